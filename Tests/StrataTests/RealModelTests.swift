import Foundation
import Testing
@testable import Strata

/// The default model against llama.cpp's reference outputs (../shared/fixtures/smollm2).
@Suite(.serialized) struct RealModelTests {
    func model() throws -> Model {
        guard let m = RealModel.model else { throw FixtureError(RealModel.missing) }
        return m
    }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
        init(_ s: String) { description = s }
    }

    func context(_ backend: Backend) throws -> InferenceContext {
        try InferenceContext(model: model(), options: ContextOptions(backend: backend, contextLength: 256))
    }

    @Test func configIsSmolLM2() throws {
        let c = try model().config
        #expect(c.blockCount == 30 && c.embeddingLength == 576 && c.headCount == 9 && c.headCountKV == 3)
        #expect(c.headDim == 64 && c.feedForwardLength == 1536 && c.vocabSize == 49152 && c.contextLength == 8192)
        #expect(c.ropeBase == 100000 && c.rmsEpsilon == 1e-5 && c.architecture.name == "llama")
        #expect(try model().weights.tiedEmbeddings)
    }

    @Test func dequantizedValuesMatchTheReference() throws {
        let act = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: RealModel.fixtures + "/activations.json"))) as! [String: Any]
        let deq = try #require(act["dequantized"] as? [String: Any])
        let m = try model()
        var checked = 0
        for (name, v) in deq {
            guard let entry = v as? [String: Any], let first = entry["first16"] as? [Double] ?? entry["values"] as? [Double],
                  let info = m.gguf.tensorInfo(name) else { continue }
            var out = [Float](repeating: 0, count: info.elementCount)
            m.gguf.withTensorBytes(info) { raw in out.withUnsafeMutableBufferPointer { Dequantize.run(info.type, src: raw, count: info.elementCount, into: $0) } }
            for (i, x) in first.enumerated() { #expect(abs(Double(out[i]) - x) < 1e-6, "\(name)[\(i)]") }
            if let sum = entry["sum"] as? Double {
                let s = out.reduce(0.0) { $0 + Double($1) }
                #expect(abs(s - sum) <= 1e-3 * max(1, abs(sum)), "\(name) sum \(s) vs \(sum)")
            }
            checked += 1
        }
        #expect(checked > 0, "no dequantized tensors found in activations.json: keys \(deq.keys.sorted())")
    }

    /// What logits are compared with. Float activations (every backend by default, native or f32
    /// weights) against the float32 reference: within 1e-3, greedy ids up to its first margin
    /// below 0.02.
    struct Reference {
        let file: String, logitTolerance: Double, margin: Double
        static let float32 = Reference(file: "logits.jsonl", logitTolerance: 1e-3, margin: 0.02)
    }

    func checkLogits(_ ctx: InferenceContext, _ ref: Reference, _ label: String) throws {
        let cases = try RealModel.lines(ref.file)
        #expect(cases.count == 6)
        for c in cases {
            let ids = RealModel.ids(c["prompt_ids"])
            ctx.resetAll()
            try ctx.prefill(ids)
            let logits = ctx.logits(row: 0)
            let want = (c["top20"] as! [[Double]]).map { (Int($0[0]), $0[1]) }
            let ours = logits.indices.sorted { logits[$0] > logits[$1] }
            #expect(ours[0] == want[0].0, "\(label) top id for \(c["prompt"]!)")
            var worst = 0.0
            for (id, l) in want { worst = worse(worst, abs(Double(logits[id]) - l)) }
            #expect(worst <= ref.logitTolerance, "\(label): max logit difference \(worst) against \(ref.file) for \(c["prompt"]!)")
            if ref.logitTolerance < 0.01 { #expect(Set(ours.prefix(20)) == Set(want.map(\.0)), "\(label) top-20 ids for \(c["prompt"]!)") }
        }
    }

    func checkGreedy(_ model: Model, _ ctx: InferenceContext, _ ref: Reference, _ label: String) throws {
        let generator = Generator(model: model, tokenizer: RealModel.tokenizer, context: ctx)
        var params = GenerationParameters()
        params.sampling = .greedy
        params.maxTokens = 64
        params.ignoreEOS = true
        let file = ref.file == "logits.jsonl" ? "greedy.jsonl" : ref.file
        let cases = try RealModel.lines(file)
        #expect(cases.count == 6)
        for c in cases {
            let want = RealModel.ids(c["ids"])
            let margins = c["margins"] as! [Double]
            let upTo = min(want.count, margins.firstIndex { $0 < ref.margin } ?? want.count)
            let got = try generator.generate(promptIds: RealModel.ids(c["prompt_ids"]), parameters: params).ids
            #expect(got.count == 64)
            #expect(Array(got.prefix(upTo)) == Array(want.prefix(upTo)), "\(label) greedy ids for \(c["prompt"]!) (compared \(upTo) steps of \(file))")
        }
    }

    @Test(arguments: Backend.allCases)
    func nextTokenLogitsMatchReference(backend: Backend) throws {
        try checkLogits(try context(backend), .float32, "\(backend) native")
    }

    @Test(arguments: Backend.allCases)
    func greedyIdsMatchReference(backend: Backend) throws {
        try checkGreedy(try model(), try context(backend), .float32, "\(backend) native")
    }

    /// `--weights f32` (dequantized at load) stays the float32 path: within 1e-3 of the reference.
    @Test func f32WeightsMatchTheFloat32Reference() throws {
        let f32 = try #require(Self.f32Model, "\(RealModel.missing)")
        let ctx = try InferenceContext(model: f32, options: ContextOptions(backend: .simd, contextLength: 256))
        try checkLogits(ctx, .float32, "simd f32")
        try checkGreedy(f32, ctx, .float32, "simd f32")
    }

    static let f32Model: Model? = try? Model(path: RealModel.path, weights: .f32)

    /// The attention probabilities the kernels compute (recorded through `AttentionCapture`) against
    /// transformers' eager attention on the same float32 weights: within 1e-4 on every backend,
    /// rows summing to 1, nothing above the diagonal.
    @Test(arguments: Backend.allCases)
    func attentionMapsMatchTheReference(backend: Backend) throws {
        let f32 = try #require(Self.f32Model, "\(RealModel.missing)")
        let cases = try RealModel.lines("attention.jsonl")
        #expect(!cases.isEmpty)
        for c in cases {
            let ids = RealModel.ids(c["prompt_ids"]), T = ids.count
            let want = c["layers"] as! [String: [[[Double]]]]
            let ctx = try InferenceContext(model: f32, options: ContextOptions(backend: backend, contextLength: T))
            let capture = AttentionCapture(layers: want.keys.map { Int($0)! }, heads: f32.config.headCount, rows: T, positions: ctx.contextLength)
            ctx.attentionCapture = capture
            try ctx.prefill(ids)
            var worst = 0.0
            for (layer, heads) in want {
                let got = capture.probabilities(layer: Int(layer)!)
                #expect(got.count == heads.count)
                for (h, rows) in heads.enumerated() {
                    for (q, row) in rows.enumerated() {
                        let mine = got[h][q]
                        #expect(abs(mine.prefix(T).reduce(0, +) - 1) < 1e-5 && mine[(q + 1)...].allSatisfy { $0 == 0 }, "layer \(layer) head \(h) row \(q)")
                        for (k, p) in row.enumerated() { worst = worse(worst, abs(Double(mine[k]) - p)) }
                    }
                }
            }
            #expect(worst <= 1e-4, "\(backend): attention differs by \(worst) for \(c["prompt"]!)")
        }
    }

    /// `--cache-type f16`: keys and values rounded to half precision (relative error ≤ 2⁻¹¹) move
    /// the logits by up to about 0.01; every backend stays within 0.03 of the float32 reference
    /// and keeps its greedy ids up to the first margin below 0.1.
    @Test(arguments: Backend.allCases)
    func halfPrecisionCacheStaysNearTheReference(backend: Backend) throws {
        let ctx = try InferenceContext(model: model(), options: ContextOptions(backend: backend, contextLength: 256, cacheType: .f16))
        #expect(ctx.kvCacheBytes * 2 == (try context(backend)).kvCacheBytes)
        let ref = Reference(file: "logits.jsonl", logitTolerance: 0.03, margin: 0.1)
        try checkLogits(ctx, ref, "\(backend) f16 cache")
        // Greedy decoding (64 tokens × 6 prompts) on the fast backends; naive's logits above.
        if backend != .naive { try checkGreedy(try model(), ctx, ref, "\(backend) f16 cache") }
    }

    /// With a half-precision cache a row's result is still its own: the prompt in one step, token
    /// by token, and next to another sequence give the same logits bit for bit (simd).
    @Test func halfPrecisionCacheKeepsBatchedEqualSingle() throws {
        let whole = try InferenceContext(model: model(), options: ContextOptions(backend: .simd, contextLength: 256, slots: 2, maxLogitsRows: 2, cacheType: .f16))
        let single = try InferenceContext(model: model(), options: ContextOptions(backend: .simd, contextLength: 256, maxBatchTokens: 1, cacheType: .f16))
        let cases = try RealModel.lines("logits.jsonl")
        for (i, c) in cases.enumerated() {
            let ids = RealModel.ids(c["prompt_ids"]), other = RealModel.ids(cases[(i + 1) % cases.count]["prompt_ids"])
            whole.resetAll(); single.resetAll()
            var batch = Batch()
            _ = batch.add(slot: 0, tokens: ids, logits: .last)
            _ = batch.add(slot: 1, tokens: other, logits: .last)
            try whole.evaluate(batch)
            try single.prefill(ids)
            #expect(whole.logits(row: 0).map(\.bitPattern) == single.logits(row: 0).map(\.bitPattern), "f16 cache: batched vs single for \(c["prompt"]!)")
        }
    }

    /// `--weights native` computes on the file's blocks, unpacked to exactly the floats the f32
    /// path dequantizes at load, with the same operation order: on simd the logits are the f32
    /// path's bit for bit; on blas within rounding.
    @Test(arguments: [Backend.simd, .blas])
    func nativeWeightsGiveTheF32Logits(backend: Backend) throws {
        let f32 = try #require(Self.f32Model, "\(RealModel.missing)")
        let native = try context(backend)
        let reference = try InferenceContext(model: f32, options: ContextOptions(backend: backend, contextLength: 256))
        for c in try RealModel.lines("logits.jsonl") {
            let ids = RealModel.ids(c["prompt_ids"])
            native.resetAll(); reference.resetAll()
            try native.prefill(ids); try reference.prefill(ids)
            let a = native.logits(row: 0), b = reference.logits(row: 0)
            if backend == .simd {
                #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "native vs f32 logits for \(c["prompt"]!)")
            } else {
                let d = zip(a, b).map { abs($0 - $1) }.maxOrNaN()!
                #expect(d <= 1e-4, "native vs f32 max logit difference \(d)")
            }
        }
    }

    /// The native panels' layout takes at most 1.1 × the file's bytes for the same matrices, and
    /// the f32 path holds about 7 times as much. (The resident set itself is measured by the
    /// benchmarks: BENCHMARKS.md, sitting 4.)
    @Test func nativePanelsAreAboutTheFileSize() throws {
        let m = try model()
        let fileBytes = m.weights.matrices.reduce(0) { $0 + $1.bytes }
        let packed = m.packedWeights().bytes
        #expect(Double(packed) <= 1.1 * Double(fileBytes), "packed \(packed) B vs file \(fileBytes) B")
        #expect(m.weights.matrices.allSatisfy { !$0.isFloat })
        let f32 = try #require(Self.f32Model)
        #expect(f32.weights.matrices.allSatisfy(\.isFloat) && f32.weights.bytes > 5 * m.weights.bytes)
    }

    /// `--activations q8`: activations quantized to 8-bit blocks and integer dot products, as
    /// llama.cpp's own quantized path. Its logits move by the rounding as llama.cpp's do (which
    /// differ from float32 by up to about 1.2 here); they stay within 1.0 of llama.cpp's
    /// (`q4_1_path.jsonl`), pick the same top token wherever that reference's margin is 1 or more,
    /// and a sequence's logits are bit for bit the same prefilled in one step or token by token.
    /// Measured against the float32 reference (`logits.jsonl`, same prompts), the q8 logits move
    /// no further on average than llama.cpp's own quantized path does (within 1.25 × its mean
    /// largest top-20 difference): the 8-bit rounding costs Strata what it costs llama.cpp.
    @Test func q8ActivationsStayNearLlamaCppsQuantizedPath() throws {
        let whole = try InferenceContext(model: model(), options: ContextOptions(backend: .simd, contextLength: 256, activations: .q8))
        let single = try InferenceContext(model: model(), options: ContextOptions(backend: .simd, contextLength: 256, maxBatchTokens: 1, activations: .q8))
        let float = try RealModel.lines("logits.jsonl")
        var strataFromFloat: [Double] = [], llamaFromFloat: [Double] = []
        for (n, c) in try RealModel.lines("q4_1_path.jsonl").enumerated() {
            let ids = RealModel.ids(c["prompt_ids"])
            whole.resetAll(); single.resetAll()
            try whole.prefill(ids); try single.prefill(ids)
            let logits = whole.logits(row: 0)
            #expect(logits.map(\.bitPattern) == single.logits(row: 0).map(\.bitPattern), "q8 prefill in one step vs token by token")
            let want = (c["top20"] as! [[Double]]).map { (Int($0[0]), $0[1]) }
            var worst = 0.0
            for (id, l) in want { worst = worse(worst, abs(Double(logits[id]) - l)) }
            #expect(worst <= 1.0, "q8: max logit difference \(worst) against llama.cpp's quantized path for \(c["prompt"]!)")
            if (c["margins"] as! [Double])[0] >= 1.0 {
                #expect(logits.indices.max { logits[$0] < logits[$1] } == want[0].0, "q8 top id for \(c["prompt"]!)")
            }
            // Each quantized path's distance from the float32 reference, over the reference's
            // top-20 ids that llama.cpp's top 20 also lists (its logits for the others are not in
            // the fixture), so that both are measured on the same ids.
            try #require(n < float.count && RealModel.ids(float[n]["prompt_ids"]) == ids, "logits.jsonl and q4_1_path.jsonl list the same prompts")
            let reference = (float[n]["top20"] as! [[Double]]).map { (Int($0[0]), $0[1]) }
            let llama = Dictionary(want, uniquingKeysWith: { a, _ in a })
            let shared = reference.filter { llama[$0.0] != nil }
            try #require(shared.count >= 15, "the two references share \(shared.count) of their top-20 ids")
            strataFromFloat.append(shared.map { abs(Double(logits[$0.0]) - $0.1) }.maxOrNaN() ?? .infinity)
            llamaFromFloat.append(shared.map { abs(llama[$0.0]! - $0.1) }.maxOrNaN() ?? 0)
        }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        #expect(!strataFromFloat.isEmpty && mean(strataFromFloat) <= 1.25 * mean(llamaFromFloat),
                "q8 moves the logits from float32 by \(mean(strataFromFloat)) on average; llama.cpp's quantized path by \(mean(llamaFromFloat))")
    }

    /// `--activations q24`: activations held to 24 bits per block (three 8-bit planes) on the
    /// integer kernels are as accurate as float32 activations: logits within 2e-4 of the float32
    /// reference (a tenth of the tolerance the issue sets for float activations, 2e-3; measured
    /// 2.3e-5 from llama.cpp's float32 logits, BENCHMARKS.md sitting 11; 16-bit activations would
    /// be ~1.5e-3 off), greedy ids up to its first margin below 0.02, and a sequence's logits bit
    /// for bit the same prefilled in one step or token by token.
    @Test func q24ActivationsMeetTheFloat32Reference() throws {
        let m = try model()
        let whole = try InferenceContext(model: m, options: ContextOptions(backend: .simd, contextLength: 256, activations: .q24))
        let single = try InferenceContext(model: m, options: ContextOptions(backend: .simd, contextLength: 256, maxBatchTokens: 1, activations: .q24))
        let ref = Reference(file: "logits.jsonl", logitTolerance: 2e-4, margin: 0.02)
        try checkLogits(whole, ref, "simd q24")
        for c in try RealModel.lines("logits.jsonl") {
            let ids = RealModel.ids(c["prompt_ids"])
            whole.resetAll(); single.resetAll()
            try whole.prefill(ids); try single.prefill(ids)
            #expect(whole.logits(row: 0).map(\.bitPattern) == single.logits(row: 0).map(\.bitPattern), "q24 prefill in one step vs token by token")
        }
        try checkGreedy(m, whole, ref, "simd q24")
    }

    @Test func backendsAgreeOnRealLogits() throws {
        let blas = try context(.blas), naive = try context(.naive)
        for c in try RealModel.lines("logits.jsonl") {
            let ids = RealModel.ids(c["prompt_ids"])
            blas.resetAll(); naive.resetAll()
            try blas.prefill(ids); try naive.prefill(ids)
            let a = blas.logits(row: 0), b = naive.logits(row: 0)
            let d = zip(a, b).map { abs($0 - $1) }.maxOrNaN()!
            #expect(d <= 1e-3, "BLAS vs naive max logit difference \(d)")
        }
    }

    @Test func tokenizerMatchesReference() throws {
        let t = try #require(RealModel.tokenizer, "\(RealModel.missing)")
        #expect(t.preTokenizer == .smollm && !t.addBOS && t.endOfGeneration == [0, 2, 4])
        let cases = try RealModel.lines("tokenizer.jsonl")
        #expect(cases.count >= 20)
        for c in cases {
            let text = c["text"] as! String
            #expect(t.encode(text, special: false) == RealModel.ids(c["ids_plain"]), "plain: \(text.debugDescription)")
            #expect(t.encode(text, special: true) == RealModel.ids(c["ids_special"]), "special: \(text.debugDescription)")
            #expect(t.decode(t.encode(text)) == text)
        }
    }

    @Test func chatPromptsAreReproducedByteForByte() throws {
        let t = try #require(RealModel.tokenizer, "\(RealModel.missing)")
        let template = try ChatTemplate.detect(try model().gguf.string("tokenizer.chat_template"))
        var chats = 0
        for c in try RealModel.lines("greedy.jsonl") where c["chat"] as? Bool == true {
            let messages = (c["messages"] as! [[String: String]]).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
            let rendered = template.render(messages)
            #expect(rendered.text == c["prompt"] as! String)
            #expect(t.encode(rendered, addSpecial: true) == RealModel.ids(c["prompt_ids"]))
            chats += 1
        }
        #expect(chats >= 2)
        // And plain prompts encode to the fixture's prompt ids.
        for c in try RealModel.lines("greedy.jsonl") where c["chat"] as? Bool == false {
            #expect(t.encode(c["prompt"] as! String, special: true, addSpecial: true) == RealModel.ids(c["prompt_ids"]))
        }
    }

    @Test func truncatedOrCorruptRealFileIsATypedError() throws {
        let m = try model()
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: RealModel.path))
        defer { try? handle.close() }
        let headerEnd = m.gguf.dataOffset
        let head = [UInt8](try handle.read(upToCount: headerEnd + 4096)!)
        var offsets = Set<Int>([0, 3, 4, 7, 8, 15, 16, 23, 24, 100, headerEnd - 1, headerEnd, headerEnd + 100])
        var rng = Xoshiro256(seed: 11)
        while offsets.count < 120 { offsets.insert(Int(rng.next() % UInt64(headerEnd))) }
        for n in offsets.sorted() {
            let path = try TempFiles.write(Array(head[0 ..< n]), name: "trunc-real.gguf")
            #expect(throws: GGUFError.self, "truncated at \(n)") { try GGUFFile(path: path) }
            try? FileManager.default.removeItem(atPath: path)
        }
        // Corrupt single bytes in the header: either still parses or is a typed error, never a crash.
        for _ in 0 ..< 60 {
            var b = head
            let i = Int(rng.next() % UInt64(min(headerEnd, 4096)))
            b[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            let path = try TempFiles.write(b, name: "corrupt-real.gguf")
            do { _ = try GGUFFile(path: path) } catch is GGUFError {}
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
