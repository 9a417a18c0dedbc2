import Foundation
import Testing
@testable import Strata

/// Every architecture's plan on tiny random models: the backends agree, the KV cache gives what a
/// full recompute gives, a batch gives what each sequence gives alone (bit for bit on simd and
/// naive) — sliding windows included — and files asking for what Strata lacks are refused.
@Suite struct ArchitectureTests {
    static func gemma() -> TinyModel {
        var g = TinyModel()
        g.architecture = "gemma3"
        g.layers = 6            // layer 5 global, 0–4 a window of 4 keys
        g.kvHeads = 1
        g.keyLength = 32        // 4 heads × 32 = 128 ≠ embd 64, as in Gemma (256 × 4 vs 640)
        g.slidingWindow = 4
        g.ropeBase = 1e6        // the global layer's; local layers use 10,000
        return g
    }

    static func phi3() -> TinyModel { var p = TinyModel(); p.architecture = "phi3"; return p }
    static func qwen2() -> TinyModel { var q = TinyModel(); q.architecture = "qwen2"; return q }
    static func llama3() -> TinyModel { var l = TinyModel(); l.ropeFreqs = true; return l }

    static let models: [String: Model] = [
        "gemma3": try! gemma().load(), "phi3": try! phi3().load(), "qwen2": try! qwen2().load(),
        "llama3": try! llama3().load(), "llama": try! TinyModel().load(),
    ]
    static let names = ["gemma3", "phi3", "qwen2", "llama3"]

    let tokens: [Int32] = [5, 40, 77, 100, 3, 250, 18, 9, 61, 200, 33, 140, 7, 12]
    /// Four prompts of different lengths (one a single token), evaluated together in one batch.
    var batchSequences: [[Int32]] { [Array(tokens), [100], [8, 8, 8, 9, 10, 11], [250, 1, 60]] }

    func lastLogits(_ model: Model, _ ids: some Collection<Int32>, backend: Backend, chunk: Int = 512) throws -> [Float] {
        let ctx = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 64, maxBatchTokens: chunk))
        try ctx.prefill(ids)
        return ctx.logits(row: 0)
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.maxOrNaN() ?? 0 }

    /// How far two computations of the same logits in a different order may be apart. Gemma's GELU
    /// reads a table indexed by its input rounded to half precision (as llama.cpp does): an input
    /// one float ulp across a rounding boundary steps the output by a half-precision ulp (5e-4
    /// relative), which reaches the tiny model's logits (magnitude ~20) as up to ~2e-3.
    func tolerance(_ name: String) -> Float { name == "gemma3" ? 3e-3 : 1e-4 }

    @Test func plansAreWhatTheArchitecturesAre() throws {
        let g = Self.models["gemma3"]!
        let names = g.plan.ops.filter { $0.layer == 3 }.map(\.name)
        #expect(names == ["blk.3.attn_norm", "blk.3.attn_q", "blk.3.attn_k", "blk.3.attn_v", "blk.3.attn_q_norm", "blk.3.attn_k_norm",
                          "blk.3.rope", "blk.3.kv_store", "blk.3.attn_scores", "blk.3.attn_output", "blk.3.post_attention_norm",
                          "blk.3.ffn_norm", "blk.3.ffn_gate", "blk.3.ffn_up", "blk.3.ffn_act", "blk.3.ffn_down", "blk.3.post_ffw_norm"])
        // Layers 0–4 attend through the window with base 10,000; layer 5 to everything.
        var windows: [Int?] = [], bases: [Double] = []
        for s in g.plan.steps {
            if case let .attention(w, _) = s.action { windows.append(w) }
            if case let .rope(r) = s.action { bases.append(r.base); #expect(r.style == .neox) }
        }
        #expect(windows == [4, 4, 4, 4, 4, nil])
        #expect(bases == [10_000, 10_000, 10_000, 10_000, 10_000, 1e6])
        #expect(g.plan.defaultChatTemplate == "gemma")
        if case let .embed(_, scale) = g.plan.steps[0].action { #expect(scale == Float(64).squareRoot()) } else { Issue.record("no embed first") }
        let p = Self.models["phi3"]!
        #expect(p.plan.ops.filter { $0.layer == 0 }.map(\.kind) == [.attnNorm, .attnQKV, .rope, .kvStore, .attnScores, .attnOutput,
                                                                    .ffnNorm, .ffnUp, .ffnAct, .ffnDown])
        #expect(p.plan.defaultChatTemplate == "phi3")
        let l = Self.models["llama3"]!
        #expect(l.plan.steps.contains { if case let .rope(r) = $0.action { r.factorsTensor == "rope_freqs.weight" } else { false } })
    }

    @Test(arguments: names)
    func backendsAgree(name: String) throws {
        let m = Self.models[name]!
        let simd = try lastLogits(m, tokens, backend: .simd)
        #expect(simd.contains { $0 != 0 } && simd.allSatisfy(\.isFinite))
        #expect(maxDiff(simd, try lastLogits(m, tokens, backend: .blas)) <= tolerance(name))
        #expect(maxDiff(simd, try lastLogits(m, tokens, backend: .naive)) <= tolerance(name))
    }

    @Test(arguments: names, Backend.allCases)
    func incrementalDecodeEqualsFullRecompute(name: String, backend: Backend) throws {
        let m = Self.models[name]!
        let ctx = try InferenceContext(model: m, options: ContextOptions(backend: backend, contextLength: 64))
        try ctx.prefill(tokens[0 ..< 2])
        var batch = Batch()
        for t in 2 ..< tokens.count {
            let fresh = try lastLogits(m, tokens[0 ..< t], backend: backend)
            #expect(maxDiff(fresh, ctx.logits(row: 0)) <= tolerance(name), "\(name) \(backend) step \(t)")
            // Prefill in chunks of 3: rows of one step straddle the window's edge.
            #expect(maxDiff(fresh, try lastLogits(m, tokens[0 ..< t], backend: backend, chunk: 3)) <= tolerance(name), "\(name) \(backend) chunked \(t)")
            batch.removeAll()
            batch.add(slot: 0, token: tokens[t])
            try ctx.evaluate(batch)
        }
    }

    /// Sequences of different lengths in one step, then decode steps together: each sequence's
    /// logits are those it gets alone, bit for bit on simd and naive (BLAS picks other code paths
    /// for other row counts).
    @Test(arguments: names, Backend.allCases)
    func batchedEqualsSingle(name: String, backend: Backend) throws {
        let m = Self.models[name]!
        let seqs = batchSequences
        let ctx = try InferenceContext(model: m, options: ContextOptions(backend: backend, contextLength: 64, slots: 4))
        var batch = Batch()
        var rows: [Int] = []
        for (s, ids) in seqs.enumerated() { rows.append(batch.add(slot: s, tokens: ids, logits: .last)) }
        try ctx.evaluate(batch)
        let tolerance: Float = backend == .blas ? tolerance(name) : 0
        var seqsNow = seqs
        for step in 0 ..< 3 {
            for (s, ids) in seqsNow.enumerated() {
                #expect(maxDiff(ctx.logits(row: rows[s]), try lastLogits(m, ids, backend: backend)) <= tolerance, "\(name) \(backend) sequence \(s) step \(step)")
            }
            batch.removeAll(); rows = []
            for s in seqsNow.indices {
                let t = Int32(30 + 7 * s + step)
                seqsNow[s].append(t)
                rows.append(batch.add(slot: s, tokens: [t], logits: .last))
            }
            try ctx.evaluate(batch)
        }
    }

    /// The simd backend deals matrix panels and (row, KV head) attention pairs to its threads:
    /// one thread or two, a batch of prompts (a chunk of several rows, a single row) then decode
    /// rows gives the same logits bit for bit, with either cache type. Sliding windows included
    /// (gemma3), and one KV head (gemma3) as well as several.
    @Test(.enabled(if: ThreadPool.shared.width >= 2, "the pool has one thread (one core, or STRATA_THREADS=1): nothing to compare"),
          arguments: names + ["llama"], [KVCacheType.f32, .f16])
    func threadCountDoesNotChangeTheLogits(name: String, cacheType: KVCacheType) throws {
        let m = Self.models[name]!
        let seqs = batchSequences
        func run(threads: Int) throws -> [[Float]] {
            let ctx = try InferenceContext(model: m, options: ContextOptions(backend: .simd, threads: threads, contextLength: 64,
                                                                             slots: 4, cacheType: cacheType))
            #expect(ctx.threads == threads)
            var out: [[Float]] = []
            var batch = Batch()
            var rows: [Int] = []
            for (s, ids) in seqs.enumerated() { rows.append(batch.add(slot: s, tokens: ids, logits: .last)) }
            for step in 0 ..< 4 {
                try ctx.evaluate(batch)
                out += rows.map { ctx.logits(row: $0) }
                batch.removeAll(); rows = []
                for s in seqs.indices { rows.append(batch.add(slot: s, tokens: [Int32(30 + 7 * s + step)], logits: .last)) }
            }
            return out
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        #expect(one.count == 16)
        for (k, (a, b)) in zip(one, two).enumerated() {
            let differ = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(a.count == m.config.vocabSize && b.count == a.count)
            #expect(differ == 0, "\(name) \(cacheType) step \(k / 4) sequence \(k % 4): \(differ) of \(a.count) logits differ")
        }
    }

    /// The window matters: with it, a token far back cannot change the next-token logits of a
    /// window-only model (two layers of 4 keys reach 6 positions back); the global layer sees it.
    @Test func slidingWindowHidesOldTokens() throws {
        var local = Self.gemma()
        local.layers = 2          // no global layer
        let m = try local.load()
        var a = tokens, b = tokens
        b[0] = 222
        #expect(maxDiff(try lastLogits(m, a, backend: .simd), try lastLogits(m, b, backend: .simd)) == 0)
        // Inside the window (the last 4 positions) a change is seen.
        a[tokens.count - 2] = 222
        #expect(maxDiff(try lastLogits(m, a, backend: .simd), try lastLogits(m, b, backend: .simd)) > 1e-3)
        let g = Self.models["gemma3"]!
        #expect(maxDiff(try lastLogits(g, tokens, backend: .simd), try lastLogits(g, b, backend: .simd)) > 1e-3)
    }

    @Test func ropeFreqsChangeTheLogits() throws {
        let plain = try lastLogits(Self.models["llama"]!, tokens, backend: .simd)
        #expect(maxDiff(plain, try lastLogits(Self.models["llama3"]!, tokens, backend: .simd)) > 1e-3)
    }

    @Test func refusesWhatItDoesNotImplement() throws {
        // A tensor no plan step reads (Qwen2-style biases in a Llama file) is refused, named.
        var extra = TinyModel()
        extra.extraTensors = ["blk.0.attn_q.bias": [64], "blk.1.ffn_gate_inp.weight": [64, 4]]
        #expect(throws: ModelError.unusedTensors(["blk.0.attn_q.bias", "blk.1.ffn_gate_inp.weight"], architecture: "llama")) { try extra.load() }
        var yarn = TinyModel()
        yarn.extraMetadata = [("llama.rope.scaling.type", .string("yarn")), ("llama.rope.scaling.factor", .float32(4))]
        #expect(throws: ModelError.self) { try yarn.load() }
        do { _ = try yarn.load() } catch { #expect("\(error)".contains("rope.scaling.type") && "\(error)".contains("yarn")) }
        var softcap = Self.gemma()
        softcap.extraMetadata = [("gemma3.final_logit_softcapping", .float32(30))]
        #expect(throws: ModelError.self) { try softcap.load() }
        var missing = Self.gemma()
        missing.omit = ["blk.2.attn_k_norm.weight"]
        #expect(throws: ModelError.missingTensor("blk.2.attn_k_norm.weight")) { try missing.load() }
        var linear = TinyModel()
        linear.extraMetadata = [("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(4))]
        let scaled = try linear.load()
        #expect(scaled.config.ropePositionScale == 0.25)
        // Gemma scales positions on its global layers only (llama.cpp: local layers keep scale 1).
        var gemmaLinear = Self.gemma()
        gemmaLinear.extraMetadata = [("gemma3.rope.scaling.type", .string("linear")), ("gemma3.rope.scaling.factor", .float32(8))]
        let scales = try gemmaLinear.load().plan.steps.compactMap { if case let .rope(r) = $0.action { r.positionScale } else { nil } }
        #expect(scales == [1, 1, 1, 1, 1, 0.125])
        // RoPE frequency divisors must be finite and positive.
        var zero = Self.llama3()
        zero.ropeFreqValues = [1, 0, 2, 3, 1, 1, 1, 1]
        #expect(throws: ModelError.self) { try zero.load() }
        // rope_freqs means nothing to Gemma's plan: refused as unused, not silently ignored.
        var gemmaFreqs = Self.gemma()
        gemmaFreqs.ropeFreqs = true
        #expect(throws: ModelError.unusedTensors(["rope_freqs.weight"], architecture: "gemma3")) { try gemmaFreqs.load() }
        var badBase = Self.gemma()
        badBase.extraMetadata = [("gemma3.rope.freq_base_swa", .float32(0))]
        #expect(throws: ModelError.self) { try badBase.load() }
    }

    /// `attention.sliding_window_pattern` as llama.cpp reads it: a period (layer i slides when
    /// i % n < n - 1) or one flag per layer.
    @Test func gemmaSlidingWindowPattern() throws {
        func windows(_ extra: [(String, GGUFValue)]) throws -> [Int?] {
            var g = Self.gemma()
            g.extraMetadata = extra
            return try g.load().plan.steps.compactMap { if case let .attention(w, _) = $0.action { w } else { nil } }
        }
        #expect(try windows([("gemma3.attention.sliding_window_pattern", .uint32(3))]) == [4, 4, nil, 4, 4, nil])
        let flags: [GGUFValue] = [.bool(false), .bool(true), .bool(true), .bool(false), .bool(true), .bool(true)]
        #expect(try windows([("gemma3.attention.sliding_window_pattern", .array(flags))]) == [nil, 4, 4, nil, 4, 4])
        #expect(throws: ModelError.self) { try windows([("gemma3.attention.sliding_window_pattern", .array([.bool(true)]))]) }
    }

    /// Tiny Qwen2, Phi-3 and Llama 3 (rope_freqs) GGUFs written with the `gguf` package by
    /// `make tiny-models` into $STRATA_HOME/tiny-architectures (hash-checked), and llama.cpp's
    /// logits on them in Tests/Fixtures/tiny-architectures (make.sh there rebuilds both).
    static let tinyDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny-architectures").path
    static let tinyModels = ModelStore.home + "/tiny-architectures"
    nonisolated(unsafe) static let tinyReference: [String: [[String: Any]]] = {
        guard let data = FileManager.default.contents(atPath: tinyDir + "/reference.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: [[String: Any]]] else { return [:] }
        return json
    }()

    /// Every position's logits within 1e-4 of llama.cpp's, and its greedy ids, on every backend.
    @Test(arguments: ["tiny-qwen2", "tiny-phi3", "tiny-llama3"], Backend.allCases)
    func tinyModelsMatchLlamaCpp(name: String, backend: Backend) throws {
        let cases = try #require(Self.tinyReference[name], "no llama.cpp reference for \(name) in \(Self.tinyDir)/reference.json")
        #expect(cases.count == 3)
        let path = Self.tinyModels + "/" + name + ".gguf"
        #expect(FileManager.default.fileExists(atPath: path), "\(path) is missing: run `make tiny-models` (make test does)")
        let m = try Model(path: path)
        let ctx = try InferenceContext(model: m, options: ContextOptions(backend: backend, contextLength: 64, maxLogitsRows: 32))
        for c in cases {
            let ids = RealModel.ids(c["prompt_ids"])
            let want = c["logits"] as! [[Double]]
            ctx.resetAll()
            var batch = Batch()
            batch.add(slot: 0, tokens: ids, logits: .all)
            try ctx.evaluate(batch)
            var worst = 0.0
            for (row, w) in want.enumerated() {
                let got = ctx.logits(row: row)
                #expect(got.count == w.count)
                for (g, r) in zip(got, w) { worst = worse(worst, abs(Double(g) - r)) }
            }
            #expect(worst <= 1e-4, "\(name) \(backend): max logit difference \(worst) over \(ids.count) positions")
            let generator = Generator(model: m, tokenizer: nil, context: ctx)
            var params = GenerationParameters()
            params.sampling = .greedy
            params.maxTokens = 8
            params.ignoreEOS = true
            let got = try generator.generate(promptIds: ids, parameters: params).ids
            #expect(got == RealModel.ids(c["greedy"]), "\(name) \(backend) greedy ids")
        }
    }
}
