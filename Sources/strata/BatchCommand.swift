import ArgumentParser
import Dispatch
import Foundation
import Strata

struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run a JSONL file of prompts with continuous batching; write one JSONL line per prompt as it finishes.",
        discussion: """
        Input lines: {"id": …, "prompt": "…"} or {"id": …, "messages": [{"role": …, "content": …}]}, with optional \
        max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, frequency_penalty, presence_penalty, seed, stop. \
        The command-line sampling options are the defaults for every line.
        Output lines: {"id", "text", "ids", "finish_reason", "prompt_tokens", "completion_tokens"}, or {"id", "line", "error"}.
        Resumable: ids already in the output are skipped and new lines appended; a torn last line is removed and redone; \
        a corrupt line is reported and left, never deleted. The output is opened for append under an exclusive lock; \
        a write error (a full disk) stops the job with the path and errno, keeping the lines written. \
        Ids must be strings or integers: any other id gives an error record with the id as given.
        Scale-out: --shard i/n takes every n-th input line starting at line i (0-based), so n machines can split one input.
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var samplingOptions: SamplingOptions

    @Option(help: "Input JSONL file ('-' for stdin).")
    var input: String
    @Option(help: "Output JSONL file (appended to and resumed if it exists).")
    var output: String
    @Option(help: "Sequences decoded together.")
    var parallel: Int = 16
    @Option(help: "Take every n-th line starting at line i (0-based): 'i/n'.")
    var shard: String?
    @Option(name: .customLong("chat-template"), help: "Override the chat template for 'messages' lines.")
    var chatTemplate: String?

    func validate() throws {
        if parallel < 1 || parallel > 1024 { throw ValidationError("--parallel must be between 1 and 1024, got \(parallel)") }
        if let s = shard { _ = try Self.parseShard(s) }
        if input != "-" && !FileManager.default.fileExists(atPath: input) { throw ValidationError("--input '\(input)' does not exist") }
    }

    static func parseShard(_ s: String) throws -> (Int, Int) {
        let parts = s.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard must be 'i/n' with 0 ≤ i < n, got '\(s)'")
        }
        return (i, n)
    }

    func run() throws {
        let data = input == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: input))
        var jobs = try BatchJobs(data: data, shard: try shard.map(Self.parseShard))
        let out = try BatchOutput(path: output)
        jobs.skip(done: out.doneIds, doneLines: out.doneLines)
        if jobs.pending.isEmpty {
            printErr("batch: nothing to do (\(out.doneIds.count + out.doneLines.count) line(s) already in \(output))")
            return
        }
        let model = try modelOptions.loadModel()
        let engine = try Engine(model: model, options: modelOptions.contextOptions(slots: parallel), chatTemplate: chatTemplate)
        modelOptions.report(engine.context)
        let runner = BatchRunner(context: engine.context, tokenizer: engine.tokenizer)

        // Ctrl-C, or SIGTERM (what Slurm, Kubernetes and systemd send): stop after the current step;
        // sequences in flight are not written (redone on resume).
        let stop = CancellationFlag(), terminated = CancellationFlag()
        let sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { if sig == SIGTERM { terminated.set() }; stop.set() }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }

        let total = jobs.pending.count
        var progress = Progress(total: total, skipped: out.doneIds.count + out.doneLines.count)
        var queue = jobs.pending[...]
        var lineOf: [String: Int] = [:]
        func nextRequest() -> BatchRequest? {
            while let job = queue.popFirst() {
                do {
                    let request = try job.request(engine: engine, defaults: samplingOptions.generation)
                    lineOf[request.id] = job.line
                    return request
                } catch {
                    out.writeError(id: job.idValue, line: job.line, message: "\(error)")
                    progress.finished(error: true)
                }
            }
            return nil
        }
        try runner.run(next: nextRequest, onToken: { _, _ in progress.token() }, onFinish: { id, outcome in
            let job = jobs.byKey[id]!
            switch outcome {
            case let .success(r):
                if r.finishReason == .cancelled { return }
                out.writeResult(id: job.idValue, result: r)
                progress.finished(error: false)
            case let .failure(e):
                out.writeError(id: job.idValue, line: job.line, message: "line \(job.line): \(e)")
                progress.finished(error: true)
            }
        }, shouldStop: { stop.isSet || out.failure != nil })
        progress.done()
        if let failure = out.failure {
            printErr("batch: \(failure); stopped with \(progress.completed) of \(total) line(s) handled; the lines written are kept, run the same command again to resume")
            Foundation.exit(1)
        }
        if stop.isSet {
            printErr("batch: interrupted; \(progress.completed) of \(total) written to \(output). Run the same command again to resume.")
            Foundation.exit(terminated.isSet ? 143 : 130)   // 128 + the signal, as a shell reports it
        }
    }
}

/// One input line.
struct BatchJob {
    let line: Int            // 1-based
    let key: String          // canonical id
    let idValue: Any         // the id as given (string or number)
    let object: [String: Any]

    static let known: Set<String> = ["id", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                                     "repeat_penalty", "repeat_last_n", "frequency_penalty", "presence_penalty", "seed", "stop"]

    func request(engine: Engine, defaults: GenerationParameters) throws -> BatchRequest {
        if let e = parseError { throw BatchLineError(e) }
        let unknown = Set(object.keys).subtracting(Self.known)
        guard unknown.isEmpty else { throw BatchLineError("line \(line): unknown field(s) \(unknown.sorted().joined(separator: ", "))") }
        var p = defaults
        func number(_ k: String) throws -> Double? {
            guard let v = object[k] else { return nil }
            // JSON booleans arrive as NSNumber too; their type encoding is "c".
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { throw BatchLineError("line \(line): '\(k)' must be a number") }
            return n.doubleValue
        }
        func integer(_ k: String) throws -> Int? {
            guard let d = try number(k) else { return nil }
            guard d == d.rounded(), abs(d) < 1e15 else { throw BatchLineError("line \(line): '\(k)' must be an integer") }
            return Int(d)
        }
        if let v = try integer("max_tokens") { p.maxTokens = v }
        if let v = try number("temperature") { p.sampling.temperature = Float(v) }
        if let v = try number("top_p") { p.sampling.topP = Float(v) }
        if let v = try integer("top_k") { p.sampling.topK = v }
        if let v = try number("min_p") { p.sampling.minP = Float(v) }
        if let v = try number("repeat_penalty") { p.sampling.repeatPenalty = Float(v) }
        if let v = try integer("repeat_last_n") { p.sampling.repeatLastN = v }
        if let v = try number("frequency_penalty") { p.sampling.frequencyPenalty = Float(v) }
        if let v = try number("presence_penalty") { p.sampling.presencePenalty = Float(v) }
        if let v = try integer("seed") {
            guard v >= 0 else { throw BatchLineError("line \(line): 'seed' must be ≥ 0") }
            p.sampling.seed = UInt64(v)
        }
        if let s = object["stop"] {
            if let one = s as? String { p.stop = [one] }
            else if let many = s as? [String] { p.stop = many }
            else { throw BatchLineError("line \(line): 'stop' must be a string or an array of strings") }
        }
        do { try p.validate() } catch { throw BatchLineError("line \(line): \(error)") }
        let prompt: Prompt
        switch (object["prompt"], object["messages"]) {
        case let (text as String, nil):
            prompt = .text(text)
        case let (nil, list as [Any]):
            var messages: [ChatMessage] = []
            for m in list {
                guard let d = m as? [String: Any], let role = d["role"] as? String, let content = d["content"] as? String else {
                    throw BatchLineError("line \(line): each message needs string 'role' and 'content'")
                }
                messages.append(ChatMessage(role: role, content: content))
            }
            guard !messages.isEmpty else { throw BatchLineError("line \(line): 'messages' is empty") }
            prompt = .messages(messages)
        case (nil, nil): throw BatchLineError("line \(line): missing 'prompt' or 'messages'")
        case (.some, .some): throw BatchLineError("line \(line): give 'prompt' or 'messages', not both")
        default: throw BatchLineError("line \(line): 'prompt' must be a string and 'messages' an array")
        }
        let ids: [Int32]
        do { ids = try engine.encode(prompt) } catch { throw BatchLineError("line \(line): \(error)") }
        guard !ids.isEmpty else { throw BatchLineError("line \(line): the prompt is empty") }
        return BatchRequest(id: key, promptIds: ids, parameters: p)
    }
}

struct BatchLineError: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}

/// The input, parsed and checked before any work: duplicate ids are an error for the whole job.
struct BatchJobs {
    var pending: [BatchJob] = []
    var byKey: [String: BatchJob] = [:]

    init(data: Data, shard: (Int, Int)?) throws {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var firstLine: [String: Int] = [:]
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            // Every line's id is checked for duplicates, the other shards' too (each shard of a
            // job sees the same input, so a duplicate anywhere would be written twice).
            let mine = shard.map { index % $0.1 == $0.0 } ?? true
            var object: [String: Any] = [:]
            var key = "#line\(number)"
            var idValue: Any = NSNull()
            if let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] {
                object = o
                if let s = o["id"] as? String { key = "s:" + s; idValue = s }
                else if let n = o["id"] as? NSNumber, Self.isInteger(n) { key = Self.key(n); idValue = n }
                else if let bad = o["id"] {
                    // null, a boolean, a fraction, an array or an object: an error record that gives
                    // the id back exactly as it came.
                    idValue = bad
                    object["__error"] = "line \(number): 'id' must be a string or an integer"
                }
                if key.hasPrefix("s:") || key.hasPrefix("n:"), let prev = firstLine[key] {
                    throw ValidationError("duplicate id \(o["id"]!) on input lines \(prev) and \(number)")
                }
                firstLine[key] = number
                if o["id"] == nil { object["__error"] = "line \(number): missing 'id'" }
            } else {
                object["__error"] = "line \(number): not a JSON object"
            }
            guard mine else { continue }
            let job = BatchJob(line: number, key: key, idValue: idValue, object: object)
            pending.append(job)
            byKey[key] = job
        }
    }

    /// An integral JSON number (not a boolean, not a fraction).
    static func isInteger(_ n: NSNumber) -> Bool {
        let type = String(cString: n.objCType)
        if type == "c" || type == "B" { return false }            // JSON true/false
        if type == "d" || type == "f" { return n.doubleValue.rounded() == n.doubleValue && abs(n.doubleValue) < 9e15 }
        return true
    }

    /// The key of an integer id, the same however the number was written (7, 7.0, 7e0).
    static func key(_ n: NSNumber) -> String {
        let type = String(cString: n.objCType)
        return "n:" + (type == "d" || type == "f" ? String(Int64(n.doubleValue)) : n.stringValue)
    }

    mutating func skip(done: Set<String>, doneLines: Set<Int>) {
        pending.removeAll { done.contains($0.key) || doneLines.contains($0.line) }
    }
}

extension BatchJob {
    /// Lines that failed to parse carry their error; `request` reports it.
    var parseError: String? { object["__error"] as? String }
}

/// The output file: reads what is already there (for resuming), then appends one line per result,
/// synced to disk, so an interrupted job loses at most the sequences in flight. Opened for append
/// with an exclusive lock (two jobs on one file would interleave). Resuming never deletes a complete
/// line: a line that does not parse is reported and left, and only a torn last line (no newline:
/// a kill or power loss mid-write) is removed. A write or sync error stops the job (`failure`).
final class BatchOutput {
    let handle: FileHandle
    let path: String
    private(set) var doneIds: Set<String> = []
    private(set) var doneLines: Set<Int> = []
    /// The first write or sync error: the job stops after the current step and reports it.
    private(set) var failure: String?

    init(path: String) throws {
        self.path = path
        var st = stat()
        let exists = stat(path, &st) == 0
        if exists && (st.st_mode & S_IFMT) == S_IFREG {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let bytes = [UInt8](data)
            var start = 0, lineNumber = 0, parsed = 0, bad: [Int] = []
            while let nl = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                lineNumber += 1
                let line = Data(bytes[start ..< nl])
                start = nl + 1
                if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
                guard let o = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { bad.append(lineNumber); continue }
                parsed += 1
                Self.remember(o, ids: &doneIds, lines: &doneLines)
            }
            if parsed == 0 && !bad.isEmpty {
                throw ValidationError("--output '\(path)' exists and is not the JSONL output of strata batch (line 1 is not a JSON object); refusing to append to it")
            }
            for n in bad { printErr("batch: line \(n) of \(path) is not a JSON object; left as it is (its input line will be redone)") }
            if start < bytes.count {
                // The last line has no newline: a complete record is kept (its newline added), a
                // torn one removed.
                let tail = Data(bytes[start...])
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                if let o = (try? JSONSerialization.jsonObject(with: tail)) as? [String: Any] {
                    Self.remember(o, ids: &doneIds, lines: &doneLines)
                    try h.seekToEnd()
                    try h.write(contentsOf: Data([UInt8(ascii: "\n")]))
                } else {
                    printErr("batch: removing an incomplete last line from \(path) (\(bytes.count - start) bytes); it will be redone")
                    try h.truncate(atOffset: UInt64(start))
                }
                try h.close()
            }
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot open --output '\(path)': \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ValidationError("--output '\(path)' is locked by another strata batch job")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Records an output line's id (or, for an error record without a usable id, its line).
    private static func remember(_ o: [String: Any], ids: inout Set<String>, lines: inout Set<Int>) {
        if let s = o["id"] as? String { ids.insert("s:" + s) }
        else if let n = o["id"] as? NSNumber, BatchJobs.isInteger(n) { ids.insert(BatchJobs.key(n)) }
        else if let l = o["line"] as? Int { lines.insert(l) }
    }

    func write(_ object: [String: Any]) {
        guard failure == nil else { return }
        do {
            // Every value comes from parsed JSON or from Strata: serialisable, but an error stops
            // the job with a message rather than a trap.
            var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            data.append(UInt8(ascii: "\n"))
            try handle.write(contentsOf: data)
            try handle.synchronize()
        } catch {
            failure = "cannot write to \(path): \((error as NSError).localizedDescription) (\(Self.errnoText(error)))"
        }
    }

    private static func errnoText(_ error: Error) -> String {
        let ns = error as NSError
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { return "errno \(u.code): \(String(cString: strerror(Int32(u.code))))" }
        if ns.domain == NSPOSIXErrorDomain { return "errno \(ns.code): \(String(cString: strerror(Int32(ns.code))))" }
        return "\(ns.domain) \(ns.code)"
    }

    func writeResult(id: Any, result r: GenerationResult) {
        write(["id": id, "text": r.text, "ids": r.ids.map { Int($0) }, "finish_reason": r.finishReason.rawValue,
               "prompt_tokens": r.promptIds.count, "completion_tokens": r.ids.count])
    }

    func writeError(id: Any, line: Int, message: String) {
        printErr("batch: \(message)")
        write(["id": id, "line": line, "error": message])
    }
}

/// Progress on stderr: in place on a terminal, periodic lines otherwise.
struct Progress {
    let total: Int
    let skipped: Int
    var completed = 0
    var errors = 0
    var tokens = 0
    let start = DispatchTime.now().uptimeNanoseconds
    var lastPrint: UInt64 = 0

    init(total: Int, skipped: Int) {
        self.total = total
        self.skipped = skipped
        if skipped > 0 { printErr("batch: resuming; \(skipped) line(s) already done, \(total) to go") }
    }

    mutating func token() {
        tokens += 1
        maybePrint()
    }

    mutating func finished(error: Bool) {
        completed += 1
        if error { errors += 1 }
        maybePrint(force: !stderrIsTerminal && completed == total)
    }

    mutating func maybePrint(force: Bool = false) {
        let now = DispatchTime.now().uptimeNanoseconds
        let interval: UInt64 = stderrIsTerminal ? 250_000_000 : 10_000_000_000
        guard force || now - lastPrint >= interval else { return }
        lastPrint = now
        let secs = Double(now - start) / 1e9
        let rate = secs > 0 ? Double(tokens) / secs : 0
        let perSeq = completed > 0 ? secs / Double(completed) : 0
        let eta = completed > 0 ? perSeq * Double(total - completed) : 0
        let line = String(format: "batch: %d/%d done%@, %.1f tokens/s, elapsed %.0fs, ETA %.0fs", completed, total,
                          errors > 0 ? " (\(errors) errors)" : "", rate, secs, eta)
        if stderrIsTerminal { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) } else { printErr(line) }
    }

    mutating func done() {
        if stderrIsTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        printErr(String(format: "batch: %d/%d done (%d errors), %d tokens in %.1f s (%.1f tokens/s)", completed, total, errors, tokens, secs, secs > 0 ? Double(tokens) / secs : 0))
    }
}
