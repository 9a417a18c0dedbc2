import Foundation
import Testing
@testable import Strata

/// Continuous batching: a sequence's output is the same alone or in a batch.
@Suite struct BatchRunnerTests {
    static let prompts: [[Int32]] = {
        var g = Xoshiro256(seed: 77)
        let vocab = TinyModel.vocabulary().tokens.count
        return (0 ..< 20).map { i in (0 ..< (1 + i * 7 % 23)).map { _ in Int32(3 + g.next() % UInt64(vocab - 3)) } }
    }()

    func runBatch(_ model: Model, tokenizer: Tokenizer?, prompts: [[Int32]], params: [GenerationParameters], parallel: Int,
                  batchTokens: Int, backend: Backend, ctx: Int) throws -> [String: GenerationResult] {
        let context = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: ctx, slots: parallel,
                                                                                 maxBatchTokens: batchTokens))
        let runner = BatchRunner(context: context, tokenizer: tokenizer)
        var queue = prompts.enumerated().map { BatchRequest(id: "r\($0.offset)", promptIds: $0.element, parameters: params[$0.offset]) }[...]
        var out: [String: GenerationResult] = [:]
        try runner.run(next: { queue.popFirst() }, onFinish: { id, r in out[id] = try? r.get() })
        return out
    }

    func single(_ model: Model, tokenizer: Tokenizer?, prompt: [Int32], params: GenerationParameters, backend: Backend, ctx: Int) throws -> GenerationResult {
        let context = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: ctx))
        return try Generator(model: model, tokenizer: tokenizer, context: context).generate(promptIds: prompt, parameters: params)
    }

    @Test(arguments: [(1, 512), (4, 512), (16, 512), (16, 5), (7, 9)])
    func batchEqualsSingleExactlyOnTheTinyModel(config: (Int, Int)) throws {
        let (parallel, batchTokens) = config
        let model = ForwardTests.tiny
        let tok = try Tokenizer(gguf: model.gguf)
        // Mixed parameters: greedy, and seeded sampling with different chains, per request.
        let params: [GenerationParameters] = Self.prompts.indices.map { i in
            var p = GenerationParameters()
            p.maxTokens = 6 + i % 9
            p.ignoreEOS = true
            if i % 2 == 0 { p.sampling = .greedy } else { p.sampling.seed = UInt64(i); p.sampling.temperature = 0.9; p.sampling.topK = 20 }
            return p
        }
        let batch = try runBatch(model, tokenizer: tok, prompts: Self.prompts, params: params, parallel: parallel,
                                 batchTokens: batchTokens, backend: .naive, ctx: 64)
        #expect(batch.count == Self.prompts.count)
        for (i, p) in Self.prompts.enumerated() {
            let alone = try single(model, tokenizer: tok, prompt: p, params: params[i], backend: .naive, ctx: 64)
            #expect(batch["r\(i)"]?.ids == alone.ids, "request \(i), parallel \(parallel), batch tokens \(batchTokens)")
            #expect(batch["r\(i)"]?.text == alone.text)
        }
    }

    @Test func badRequestsFailAloneAndTheRestRun() throws {
        let model = ForwardTests.tiny
        let context = try InferenceContext(model: model, options: ContextOptions(contextLength: 16, slots: 2))
        let runner = BatchRunner(context: context, tokenizer: nil)
        var p = GenerationParameters(); p.maxTokens = 3; p.sampling = .greedy
        var bad = p; bad.sampling.topP = 2
        var queue: ArraySlice<BatchRequest> = [
            BatchRequest(id: "ok1", promptIds: [1, 2], parameters: p),
            BatchRequest(id: "long", promptIds: [Int32](repeating: 5, count: 17), parameters: p),
            BatchRequest(id: "badparam", promptIds: [3], parameters: bad),
            BatchRequest(id: "empty", promptIds: [], parameters: p),
            BatchRequest(id: "ok2", promptIds: [4], parameters: p),
        ]
        var results: [String: Result<GenerationResult, Error>] = [:]
        try runner.run(next: { queue.popFirst() }, onFinish: { results[$0] = $1 })
        #expect(results.count == 5)
        #expect((try? results["ok1"]!.get())?.ids.count == 3)
        #expect((try? results["ok2"]!.get())?.ids.count == 3)
        for id in ["long", "badparam", "empty"] { #expect((try? results[id]!.get()) == nil, "\(id) should fail") }
    }
}

/// The default model: 16+ different prompts (the fixture prompts among them), alone and batched.
@Suite(.serialized) struct RealBatchTests {
    @Test func batchedGreedyEqualsSingleSequence() throws {
        guard let model = RealModel.model, let tok = RealModel.tokenizer else { throw RealModelTests.FixtureError(RealModel.missing) }
        var prompts = try RealModel.lines("greedy.jsonl").map { RealModel.ids($0["prompt_ids"]) }
        for text in ["Once upon a time", "The meaning of life is", "In 1492,", "Water boils at", "The quick brown fox jumps",
                     "My favourite food is", "To make a cup of tea, first", "The largest planet in the solar system is",
                     "Python is a programming language that", "import numpy as np\n", "Q: What is 7 times 8?\nA:"] {
            prompts.append(tok.encode(text))
        }
        #expect(prompts.count >= 16)
        var p = GenerationParameters()
        p.sampling = .greedy
        p.maxTokens = 32
        p.ignoreEOS = true
        let params = [GenerationParameters](repeating: p, count: prompts.count)
        let runner = BatchRunnerTests()
        var alone: [[Int32]] = []
        var margins: [[Float]] = []
        for prompt in prompts {
            let context = try InferenceContext(model: model, options: ContextOptions(contextLength: 128))
            let g = Generator(model: model, tokenizer: tok, context: context)
            var steps: [Float] = []
            var q = p
            q.topLogprobs = 2
            let r = try g.generate(promptIds: prompt, parameters: q)
            for t in r.topLogprobs { steps.append(t[0].logprob - t[1].logprob) }
            alone.append(r.ids)
            margins.append(steps)
        }
        // simd (the default, which the single runs used): batched ≡ single, so every id matches,
        // near-ties included, whatever the parallelism and chunking.
        for (parallel, batchTokens) in [(1, 512), (4, 512), (16, 512), (16, 24)] {
            let batch = try runner.runBatch(model, tokenizer: tok, prompts: prompts, params: params, parallel: parallel,
                                            batchTokens: batchTokens, backend: .simd, ctx: 128)
            for i in prompts.indices {
                #expect(try #require(batch["r\(i)"]).ids == alone[i], "simd: prompt \(i), parallel \(parallel), batch tokens \(batchTokens)")
            }
        }
        // blas against the simd single runs: another backend, whose GEMM rounds a row differently
        // in a 16-row step than in a 1-row GEMV (~1e-5 in the logits), so ids are compared up to
        // the first near-tie (top-2 gap < 1e-3).
        let batch = try runner.runBatch(model, tokenizer: tok, prompts: prompts, params: params, parallel: 16,
                                        batchTokens: 24, backend: .blas, ctx: 128)
        var compared = 0
        for i in prompts.indices {
            let got = try #require(batch["r\(i)"]).ids
            let upTo = margins[i].firstIndex { $0 < 1e-3 } ?? got.count
            compared += upTo
            #expect(Array(got.prefix(upTo)) == Array(alone[i].prefix(upTo)), "blas: prompt \(i)")
        }
        #expect(compared >= prompts.count * 16, "only \(compared) ids before near-ties: the comparison says little")
    }
}
