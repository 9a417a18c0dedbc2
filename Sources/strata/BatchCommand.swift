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
        Resumable: ids already in the output are skipped and new lines appended; a torn last line is removed and redone.
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
        }, shouldStop: { stop.isSet })
        progress.done()
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
            if let (i, n) = shard, index % n != i { continue }
            var object: [String: Any] = [:]
            var key = "#line\(number)"
            var idValue: Any = NSNull()
            if let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] {
                object = o
                if let s = o["id"] as? String { key = "s:" + s; idValue = s }
                else if let n = o["id"] as? NSNumber, String(cString: n.objCType) != "c" { key = "n:" + n.stringValue; idValue = n }
                if let prev = firstLine[key], o["id"] != nil {
                    throw ValidationError("duplicate id \(o["id"]!) on input lines \(prev) and \(number)")
                }
                firstLine[key] = number
                if o["id"] == nil { object["__error"] = "line \(number): missing 'id'" }
            } else {
                object["__error"] = "line \(number): not a JSON object"
            }
            let job = BatchJob(line: number, key: key, idValue: idValue, object: object)
            pending.append(job)
            byKey[key] = job
        }
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
/// synced to disk, so an interrupted job loses at most the sequences in flight.
final class BatchOutput {
    let handle: FileHandle
    private(set) var doneIds: Set<String> = []
    private(set) var doneLines: Set<Int> = []

    init(path: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            var keep = 0
            var start = 0
            let bytes = [UInt8](data)
            while let nl = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(bytes[start ..< nl])
                guard let o = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { break }
                if let s = o["id"] as? String { doneIds.insert("s:" + s) }
                else if let n = o["id"] as? NSNumber { doneIds.insert("n:" + n.stringValue) }
                else if let l = o["line"] as? Int { doneLines.insert(l) }
                start = nl + 1
                keep = start
            }
            if keep < bytes.count {
                printErr("batch: removing an incomplete last line from \(path) (\(bytes.count - keep) bytes); it will be redone")
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try h.truncate(atOffset: UInt64(keep))
                try h.close()
            }
        } else {
            guard fm.createFile(atPath: path, contents: nil) else {
                throw ValidationError("cannot create --output '\(path)'")
            }
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
    }

    func write(_ object: [String: Any]) {
        var data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        data.append(UInt8(ascii: "\n"))
        handle.write(data)
        try? handle.synchronize()
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
