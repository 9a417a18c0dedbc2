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
        Output lines: {"id", "text", "ids", "finish_reason", "prompt_tokens", "completion_tokens"}, or {"id", "line", "error", "line_hash"}.
        Resumable: ids already in the output are skipped (an error record without a usable id by its line and that line's hash) and new lines appended; a torn last line is removed and redone; \
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
        if let t = chatTemplate { do { _ = try ChatTemplate.named(t) } catch { throw ValidationError("\(error)") } }
        var a = stat(), b = stat()
        if input != "-", stat(input, &a) == 0, stat(output, &b) == 0, a.st_dev == b.st_dev, a.st_ino == b.st_ino {
            throw ValidationError("--output '\(output)' is the input file; results go to a file of their own")
        }
    }

    static func parseShard(_ s: String) throws -> (Int, Int) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard must be 'i/n' with 0 ≤ i < n, got '\(s)'")
        }
        return (i, n)
    }

    func run() throws {
        let data = input == "-" ? try readStandardInput() : try Data(contentsOf: URL(fileURLWithPath: input))
        var jobs: BatchJobs
        do { jobs = try BatchJobs(data: data, shard: try shard.map(Self.parseShard)) } catch let e as BatchInputError { throw ValidationError(e.description) }
        let out = try BatchOutput(path: output)
        jobs.skip(done: out.done)
        if jobs.pending.isEmpty {
            printErr("batch: nothing to do (\(out.done.count) line(s) already in \(output))")
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
        var progress = Progress(total: total, skipped: out.done.count)
        var queue = jobs.pending[...]
        var lineOf: [String: Int] = [:]
        func nextRequest() -> BatchRequest? {
            while let job = queue.popFirst() {
                do {
                    let request = try job.request(engine: engine, defaults: samplingOptions.generation)
                    lineOf[request.id] = job.line
                    return request
                } catch {
                    out.writeError(job, message: "\(error)")
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
                out.writeError(job, message: "line \(job.line): \(e)")
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

/// The output file: reads what is already there (for resuming), then appends one line per result,
/// synced to disk, so an interrupted job loses at most the sequences in flight. Opened for append
/// with an exclusive lock (two jobs on one file would interleave). Resuming never deletes a complete
/// line: a line that does not parse is reported and left, and only a torn last line (no newline:
/// a kill or power loss mid-write) is removed. A write or sync error stops the job (`failure`).
final class BatchOutput {
    let handle: FileHandle
    let path: String
    /// What the file already holds (`BatchJobs.doneKey` of each record).
    private(set) var done: Set<String> = []
    /// The first write or sync error: the job stops after the current step and reports it.
    private(set) var failure: String?

    init(path: String) throws {
        self.path = path
        var st = stat()
        // A device or pipe (/dev/stdout, a FIFO) is written to, never read back or trimmed.
        let regular = stat(path, &st) != 0 || (st.st_mode & S_IFMT) == S_IFREG
        // Lock first, then read and repair: a second job on the same file must be refused before
        // it touches a byte the first one wrote.
        let fd = open(path, (regular ? O_RDWR | O_CREAT : O_WRONLY) | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CommandFailure("cannot open --output '\(path)': \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CommandFailure("--output '\(path)' is locked by another strata batch job")
        }
        let h = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        handle = h
        guard regular else { return }
        let bytes = [UInt8]((try? h.readToEnd()) ?? Data())
        var start = 0, lineNumber = 0, ours = 0, others = 0, bad: [Int] = []
        while let nl = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            lineNumber += 1
            let line = Data(bytes[start ..< nl])
            start = nl + 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            guard let o = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { bad.append(lineNumber); continue }
            if BatchJobs.isOutputRecord(o) { ours += 1 } else { others += 1 }
            if let k = BatchJobs.doneKey(o) { done.insert(k) }
        }
        let tail = Data(bytes[start...])
        let tailObject = (try? JSONSerialization.jsonObject(with: tail)) as? [String: Any]
        if let o = tailObject { if BatchJobs.isOutputRecord(o) { ours += 1 } else { others += 1 } }
        let tailBlank = tail.allSatisfy { $0 == 32 || $0 == 9 || $0 == 13 }
        // A last line cut mid-write (or left as zeros by a power loss): in a file of ours, any
        // last line that is not a whole JSON object; in one with no record yet, only the start of
        // a record as written (sorted keys: one of these two).
        let torn = !tailBlank && tailObject == nil
            && (ours > 0 || ["{\"completion_tokens\":", "{\"error\":"].contains { p in
                let n = min(tail.count, p.utf8.count)
                return tail.prefix(n).elementsEqual(p.utf8.prefix(n))
            })
        // No line in the file is a record of ours and its last line is not a torn one: some other
        // file (the input, a config file), which appending to or trimming would damage.
        if ours == 0 && (!bad.isEmpty || others > 0 || (!tailBlank && !torn)) {
            throw ValidationError("--output '\(path)' exists and is not the JSONL output of strata batch (no line is a result or error record); refusing to touch it")
        }
        for n in bad { printErr("batch: line \(n) of \(path) is not a JSON object; left as it is (its input line will be redone)") }
        if !tailBlank {
            // The last line has no newline. A torn record of ours (a kill or power loss mid-write)
            // is removed; anything else is kept, its newline added.
            if torn {
                printErr("batch: removing an incomplete last line from \(path) (\(bytes.count - start) bytes); it will be redone")
                guard ftruncate(fd, off_t(start)) == 0 else {
                    throw CommandFailure("cannot trim the torn last line of --output '\(path)': \(String(cString: strerror(errno)))")
                }
            } else {
                if let o = tailObject, let k = BatchJobs.doneKey(o) { done.insert(k) }
                if tailObject == nil { printErr("batch: line \(lineNumber + 1) of \(path) is not a JSON object; left as it is (its input line will be redone)") }
                try h.write(contentsOf: Data([UInt8(ascii: "\n")]))
            }
        }
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

    /// An error record: the id as given, the line, the message, and the line's content hash (by
    /// which a resumed job recognises a line that has no usable id).
    func writeError(_ job: BatchJob, message: String) {
        printErr("batch: \(message)")
        write(["id": job.idValue, "line": job.line, "error": message, "line_hash": job.lineHash])
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
        if stderrIsTerminal { writeErr("\r\u{1B}[K" + line) } else { printErr(line) }
    }

    mutating func done() {
        if stderrIsTerminal { writeErr("\n") }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        printErr(String(format: "batch: %d/%d done (%d errors), %d tokens in %.1f s (%.1f tokens/s)", completed, total, errors, tokens, secs, secs > 0 ? Double(tokens) / secs : 0))
    }
}
