import Foundation
import Testing
@testable import Strata

@Suite struct BatchEngineTests {
    @Test func concurrentStreamsEqualSingleSequences() async throws {
        let model = ForwardTests.tiny
        let engine = try BatchEngine(model: model, options: ContextOptions(backend: .naive, contextLength: 64, slots: 4))
        var q = GenerationParameters()
        q.sampling = .greedy
        q.maxTokens = 8
        q.ignoreEOS = true
        let p = q
        let prompts: [[Int32]] = (0 ..< 10).map { i in (0 ... i % 5).map { Int32(5 + 13 * i + $0) } }
        let got = try await withThrowingTaskGroup(of: (Int, [Int32]).self) { group in
            for (i, ids) in prompts.enumerated() {
                group.addTask {
                    var out: [Int32] = []
                    for try await e in engine.submit(.ids(ids), parameters: p) where e.token >= 0 { out.append(e.token) }
                    return (i, out)
                }
            }
            var all: [Int: [Int32]] = [:]
            for try await (i, ids) in group { all[i] = ids }
            return all
        }
        let single = try Engine(model: model, options: ContextOptions(backend: .naive, contextLength: 64))
        for (i, ids) in prompts.enumerated() {
            #expect(got[i] == (try single.generate(.ids(ids), parameters: p)).ids, "request \(i)")
        }
    }

    @Test func cancellingOneStreamLeavesTheOthers() async throws {
        let engine = try BatchEngine(model: ForwardTests.tiny, options: ContextOptions(backend: .naive, contextLength: 128, slots: 2))
        var q = GenerationParameters()
        q.sampling = .greedy
        q.maxTokens = 100
        q.ignoreEOS = true
        let p = q
        async let other: Int = {
            var n = 0
            for try await e in engine.submit(.ids([7, 8]), parameters: p) where e.token >= 0 { n += 1 }
            return n
        }()
        var seen = 0
        for try await e in engine.submit(.ids([9]), parameters: p) where e.token >= 0 {
            seen += 1
            if seen == 3 { break }
        }
        #expect(seen == 3)
        #expect(try await other == 100)
        // A bad request fails its own stream only.
        await #expect(throws: InferenceError.self) {
            for try await _ in engine.submit(.ids([Int32](repeating: 3, count: 200)), parameters: p) {}
        }
    }
}

@Suite(.serialized) struct ChatInterruptTests {
    /// Ctrl-C during an answer stops that answer, not the program.
    @Test func sigintStopsTheAnswerNotTheProgram() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["chat", "--model", RealModel.path, "--ctx", "2048", "--max-tokens", "1500", "--ignore-eos", "--temperature", "0"]
        let inp = Pipe(), out = Pipe(), err = Pipe()
        p.standardInput = inp
        p.standardOutput = out
        p.standardError = err
        try p.run()
        inp.fileHandleForWriting.write(Data("Tell me a very long story.\n".utf8))
        // Wait for the answer to start streaming, then interrupt it.
        // (availableData blocks until data comes or the pipe closes; empty means chat exited early,
        // which must fail the test rather than spin forever.)
        var received = Data()
        while received.count < 20 {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received.append(chunk)
        }
        guard received.count >= 20 else {
            p.waitUntilExit()
            let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            Issue.record("chat exited (status \(p.terminationStatus)) before answering: \(errText)")
            return
        }
        kill(p.processIdentifier, SIGINT)
        inp.fileHandleForWriting.write(Data("/quit\n".utf8))
        try inp.fileHandleForWriting.close()
        let rest = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(errText)")
        #expect(errText.contains("(stopped)"))
        // Far fewer than 1500 tokens were printed.
        #expect(received.count + rest.count < 3000)
    }
}

/// A request that becomes available while another decodes joins the next step (no "exhausted"
/// latch: `next` returning nil once does not close the source).
@Suite struct LateArrivalTests {
    func params(_ n: Int) -> GenerationParameters { .greedy(n) }

    @Test func aRequestArrivingMidDecodeRunsInTheSameSteps() throws {
        let ctx = try InferenceContext(model: ForwardTests.tiny, options: ContextOptions(backend: .naive, contextLength: 128, slots: 2))
        let runner = BatchRunner(context: ctx, tokenizer: nil)
        var pending = [BatchRequest(id: "a", promptIds: [5, 6, 7], parameters: params(40))]
        var events: [String] = []
        var results: [String: [Int32]] = [:]
        try runner.run(next: { pending.isEmpty ? nil : pending.removeFirst() }, onToken: { id, _ in
            events.append(id)
            // After a's third token, b becomes available (as a server request would).
            if id == "a" && events.count == 3 { pending.append(BatchRequest(id: "b", promptIds: [9, 10], parameters: self.params(5))) }
        }, onFinish: { id, r in results[id] = try? r.get().ids })
        #expect(results["a"]?.count == 40 && results["b"]?.count == 5)
        // b's five tokens come in the five steps right after it arrived, interleaved with a's.
        #expect(Array(events.prefix(13)) == ["a", "a", "a", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"], "\(events.prefix(16))")
        // And each answer is the one it gets alone.
        let single = try Engine(model: ForwardTests.tiny, options: ContextOptions(backend: .naive, contextLength: 128))
        #expect(results["b"] == (try single.generate(.ids([9, 10]), parameters: params(5))).ids)
        #expect(results["a"] == (try single.generate(.ids([5, 6, 7]), parameters: params(40))).ids)
    }

    /// A short request submitted while a long one decodes runs in the same steps: the engine saw
    /// two sequences in one step. (With the old latch the short one waited for the long one to
    /// finish, so no step ever held both.) Decided by the engine's own step count, not by timing.
    @Test func batchEngineAdmitsWhileDecoding() async throws {
        let engine = try BatchEngine(model: ForwardTests.tiny, options: ContextOptions(backend: .naive, contextLength: 4096, slots: 2))
        let long = params(4000), short = params(4)
        var overlapped = false
        for _ in 0 ..< 5 where !overlapped {
            let started = AsyncStream<Void>.makeStream()
            let longTask = Task {
                var n = 0
                for try await e in engine.submit(.ids([5, 6]), parameters: long) where e.token >= 0 {
                    n += 1
                    if n == 1 { started.continuation.yield() }
                }
                return n
            }
            for await _ in started.stream { break }
            // On a very loaded machine the long request could be over before this line runs;
            // then there was nothing to overlap with, and the attempt is repeated.
            let longStillRunning = engine.activeRequests == 1
            var shortDone = 0
            for try await e in engine.submit(.ids([9]), parameters: short) where e.token >= 0 { shortDone += 1 }
            #expect(shortDone == 4)
            #expect(try await longTask.value == 4000)
            if longStillRunning { overlapped = true }
        }
        #expect(overlapped, "the long request always finished before the short one was submitted")
        #expect(engine.peakConcurrentSequences == 2)
    }
}

/// Prompt-cache reuse: a request that starts like an earlier one takes the slot holding it and
/// computes only the rest, with the same answer, bit for bit, as from scratch.
@Suite struct PrefixReuseTests {
    func params(_ n: Int) -> GenerationParameters { .greedy(n) }

    @Test func aFollowUpPromptComputesOnlyItsNewTokens() throws {
        let ctx = try InferenceContext(model: ForwardTests.tiny, options: ContextOptions(backend: .simd, contextLength: 128, slots: 3))
        let runner = BatchRunner(context: ctx, tokenizer: nil)
        var results: [String: GenerationResult] = [:]
        var prefilled = 0
        func run(_ requests: [BatchRequest]) throws {
            var pending = requests
            try runner.run(next: { pending.isEmpty ? nil : pending.removeFirst() },
                           onFinish: { results[$0] = try? $1.get() }, onStep: { prefilled += $0.prefillRows })
        }
        let first: [Int32] = [5, 6, 7, 8, 9, 10]
        try run([BatchRequest(id: "a", promptIds: first, parameters: params(6)),
                 BatchRequest(id: "other", promptIds: [40, 41, 42], parameters: params(4))])
        #expect(prefilled == first.count + 3)
        // The next turn: the first prompt, its answer, and new tokens.
        let a = try #require(results["a"])
        let second = first + a.ids + [20, 21, 22]
        prefilled = 0
        try run([BatchRequest(id: "b", promptIds: second, parameters: params(8))])
        let b = try #require(results["b"])
        // The slot held the prompt and every answer token but the last (never fed back).
        #expect(b.timings.cachedPromptTokens == first.count + a.ids.count - 1)
        #expect(prefilled == second.count - b.timings.cachedPromptTokens)
        // Same ids as from scratch, alone in a fresh context.
        let fresh = try InferenceContext(model: ForwardTests.tiny, options: ContextOptions(backend: .simd, contextLength: 128, slots: 1))
        let alone = try Generator(model: ForwardTests.tiny, tokenizer: nil, context: fresh).generate(promptIds: second, parameters: params(8))
        #expect(b.ids == alone.ids)
        // Turned off, nothing is reused.
        runner.reusePrefixes = false
        prefilled = 0
        try run([BatchRequest(id: "c", promptIds: second, parameters: params(8))])
        #expect(results["c"]?.timings.cachedPromptTokens == 0 && prefilled == second.count)
        #expect(results["c"]?.ids == alone.ids)
    }

    /// A `Generator` writing the same context in between invalidates the runner's record.
    @Test func anotherUserOfTheContextInvalidatesTheCache() throws {
        let ctx = try InferenceContext(model: ForwardTests.tiny, options: ContextOptions(backend: .naive, contextLength: 64, slots: 1))
        let runner = BatchRunner(context: ctx, tokenizer: nil)
        var result: GenerationResult?
        var pending = [BatchRequest(id: "a", promptIds: [5, 6, 7, 8], parameters: params(3))]
        try runner.run(next: { pending.isEmpty ? nil : pending.removeFirst() }, onFinish: { result = try? $1.get() })
        _ = try Generator(model: ForwardTests.tiny, tokenizer: nil, context: ctx).generate(promptIds: [30, 31, 32, 33, 34], parameters: params(2))
        pending = [BatchRequest(id: "b", promptIds: [5, 6, 7, 8, 9], parameters: params(3))]
        try runner.run(next: { pending.isEmpty ? nil : pending.removeFirst() }, onFinish: { result = try? $1.get() })
        #expect(result?.timings.cachedPromptTokens == 0)
    }
}
