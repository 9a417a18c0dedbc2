import Foundation
import Testing
@testable import Strata

@Suite struct GenerationTests {
    static let model = ForwardTests.tiny

    func generator(ctx: Int = 64, backend: Backend = .naive) throws -> Generator {
        let c = try InferenceContext(model: Self.model, options: ContextOptions(backend: backend, contextLength: ctx))
        return Generator(model: Self.model, tokenizer: try Tokenizer(gguf: Self.model.gguf), context: c)
    }

    func greedy(_ n: Int) -> GenerationParameters { .greedy(n) }

    @Test func greedyGenerationEqualsArgmaxOfFreshPrefills() throws {
        let g = try generator()
        let prompt: [Int32] = [10, 20, 30]
        let r = try g.generate(promptIds: prompt, parameters: greedy(6))
        #expect(r.ids.count == 6 && r.finishReason == .length)
        var ids = prompt
        for t in r.ids {
            let ctx = try InferenceContext(model: Self.model, options: ContextOptions(backend: .naive, contextLength: 64))
            try ctx.prefill(ids)
            let l = ctx.logits(row: 0)
            #expect(Int(t) == l.indices.max { l[$0] < l[$1] }!)
            ids.append(t)
        }
    }

    @Test func finishReasons() throws {
        let g = try generator(ctx: 16)
        // Max tokens.
        #expect(try g.generate(promptIds: [5, 6], parameters: greedy(3)).finishReason == .length)
        // Full context: 16 positions, 10 prompt tokens → at most 7 new tokens (the last is not evaluated).
        let full = try g.generate(promptIds: [Int32](repeating: 7, count: 10), parameters: greedy(100))
        #expect(full.finishReason == .length && full.ids.count == 7)
        // Prompt longer than the context: error before any compute.
        #expect(throws: InferenceError.promptTooLong(tokens: 17, contextLength: 16)) {
            try g.generate(promptIds: [Int32](repeating: 7, count: 17), parameters: greedy(1))
        }
        #expect(throws: InferenceError.emptyPrompt) { try g.generate(promptIds: [], parameters: greedy(1)) }
        // EOS: bias the end-of-generation token so it is chosen first.
        var p = greedy(10)
        p.ignoreEOS = false
        p.sampling.logitBias = [2: 1000]
        let eos = try g.generate(promptIds: [5], parameters: p)
        #expect(eos.finishReason == .eos && eos.ids == [2] && eos.text.isEmpty)
        // Stop string split across tokens: force "a", "b", "c" in turn with a bias that follows the
        // history, by generating with stop "bc" from a sequence the greedy model produces.
        let free = try g.generate(promptIds: [5, 9], parameters: greedy(8))
        let text = free.text
        try #require(text.utf8.count >= 4, "tiny model produced too little text: \(text.debugDescription)")
        let pieces = free.ids.map { g.tokenizer!.decode([$0]) }
        // A stop string that spans the boundary between the 2nd and 3rd token's text.
        let boundary = pieces[0].utf8.count + pieces[1].utf8.count
        let bytes = Array(text.utf8)
        let stop = String(decoding: bytes[(boundary - 1) ... boundary], as: UTF8.self)
        var s = greedy(8)
        s.stop = [stop]
        let stopped = try g.generate(promptIds: [5, 9], parameters: s)
        #expect(stopped.finishReason == .stop)
        let cut = String(decoding: bytes[..<(text.utf8.count)], as: UTF8.self)
        #expect(stopped.text == String(cut[..<cut.range(of: stop)!.lowerBound]))
        #expect(!stopped.text.contains(stop))
    }

    @Test func seededSamplingRepeats() throws {
        let g = try generator()
        var p = GenerationParameters()
        p.maxTokens = 12
        p.ignoreEOS = true
        p.sampling.seed = 7
        p.sampling.temperature = 1.5
        p.sampling.topK = 0
        p.sampling.minP = 0
        let a = try g.generate(promptIds: [3, 4], parameters: p).ids
        let b = try g.generate(promptIds: [3, 4], parameters: p).ids
        #expect(a == b)
        p.sampling.seed = 8
        #expect(try g.generate(promptIds: [3, 4], parameters: p).ids != a)
    }

    @Test func cacheReuseEqualsFreshPrefill() throws {
        // Multi-turn chat: the second turn reuses the cached prefix and prefills only the rest.
        let model = Self.model
        let engine = try Engine(model: model, options: ContextOptions(backend: .naive, contextLength: 128))
        var p = GenerationParameters()
        p.sampling = .greedy
        p.maxTokens = 5
        var messages = [ChatMessage(role: "user", content: "the cat")]
        let first = try engine.generate(.messages(messages), parameters: p, reuseCache: true)
        messages.append(ChatMessage(role: "assistant", content: first.text))
        messages.append(ChatMessage(role: "user", content: "and the dog"))
        let second = try engine.generate(.messages(messages), parameters: p, reuseCache: true)
        #expect(engine.context.lengths[0] > 0)
        let fresh = try Engine(model: model, options: ContextOptions(backend: .naive, contextLength: 128))
        let again = try fresh.generate(.messages(messages), parameters: p, reuseCache: false)
        #expect(second.ids == again.ids)
        #expect(second.promptIds == again.promptIds)
    }

    @Test func cachedPrefixIsReused() throws {
        let g = try generator()
        try g.prefill([1, 2, 3, 4, 5, 6], reuseCache: true)
        let observer = CountingObserver()
        g.context.observer = observer
        try g.prefill([1, 2, 3, 4, 5, 6, 7, 8], reuseCache: true)
        #expect(observer.rows == [2])          // only the two new tokens were evaluated
        try g.prefill([1, 2, 9], reuseCache: true)
        #expect(observer.rows == [2, 1])       // diverging suffix: truncated to [1, 2], then 9
        #expect(g.cachedIds[0] == [1, 2, 9] && g.context.lengths[0] == 3)
    }

    final class CountingObserver: ExecutionObserver {
        var rows: [Int] = []
        func record(kind: OpKind, layer: Int?, rows: Int, pairs: Int, start: UInt64, duration: UInt64) {
            if kind == .tokenEmbd { self.rows.append(rows) }
        }
    }

    @Test func streamDeliversTokensAndStopsOnCancel() async throws {
        let engine = try Engine(model: Self.model, options: ContextOptions(backend: .naive, contextLength: 128))
        var p = GenerationParameters()
        p.sampling = .greedy
        p.maxTokens = 20
        p.ignoreEOS = true
        var all: [Int32] = []
        for try await e in engine.stream(.ids([5, 6, 7]), parameters: p) where e.token >= 0 { all.append(e.token) }
        #expect(all.count == 20)
        let sync = try engine.generate(.ids([5, 6, 7]), parameters: p)
        #expect(sync.ids == all)
        // Cancel after three tokens: the engine stops computing (the next request runs at once).
        p.maxTokens = 100_000 / 1000
        var seen = 0
        for try await e in engine.stream(.ids([5, 6, 7]), parameters: p) where e.token >= 0 {
            seen += 1
            if seen == 3 { break }
        }
        #expect(seen == 3)
        let after = try engine.generate(.ids([5]), parameters: { var q = p; q.maxTokens = 2; return q }())
        #expect(after.ids.count == 2)
    }

    @Test func logprobsAreNormalised() throws {
        let g = try generator()
        var p = greedy(3)
        p.logprobs = true
        p.topLogprobs = 5
        let r = try g.generate(promptIds: [8, 9], parameters: p)
        #expect(r.logprobs.count == 3 && r.topLogprobs.allSatisfy { $0.count == 5 })
        for (lp, top) in zip(r.logprobs, r.topLogprobs) {
            #expect(lp <= 0 && abs(lp - top[0].logprob) < 1e-6)   // greedy picks the top one
            #expect(top.map(\.logprob) == top.map(\.logprob).sorted(by: >))
        }
    }
}

extension GenerationParameters {
    /// Greedy decoding of exactly `n` tokens (end tokens do not stop it): the tests' usual request.
    static func greedy(_ n: Int) -> GenerationParameters {
        var p = GenerationParameters()
        p.sampling = .greedy
        p.maxTokens = n
        p.ignoreEOS = true
        return p
    }
}
