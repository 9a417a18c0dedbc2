import Foundation
import Testing
@testable import Strata

/// Gemma 3 270M (Q4_K_M, fetched by `make test`) against llama.cpp's outputs in
/// ../shared/fixtures/gemma3: SentencePiece ids, the float32 path's logits and greedy ids, the
/// default quantized path's greedy ids, and a batch of 8 past the 512-token window.
@Suite(.serialized) struct GemmaTests {
    static let path = ModelStore.path(of: KnownModel.named("gemma3-270m")!)
    static let missing = "Gemma 3 270M is missing at \(path): run `make gemma` (make test does this) or `strata pull gemma3-270m`"
    static let fixtures = URL(fileURLWithPath: RealModel.fixtures).deletingLastPathComponent().appendingPathComponent("gemma3").path
    static let loaded = Result { try Model(path: path) }
    static let loadedF32 = Result { try Model(path: path, weights: .f32) }
    static let model: Model? = try? loaded.get()
    static let tokenizer: Tokenizer? = model.flatMap { try? Tokenizer(gguf: $0.gguf) }

    static func lines(_ file: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: fixtures + "/" + file, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// The model, or a failure naming why it did not load (missing, or refused: the error itself).
    func model(f32: Bool = false) throws -> Model {
        do { return try (f32 ? Self.loadedF32 : Self.loaded).get() } catch {
            Issue.record("\(FileManager.default.fileExists(atPath: Self.path) ? "loading \(Self.path): \(error)" : Self.missing)")
            throw error
        }
    }

    func context(_ m: Model, _ backend: Backend = .simd, slots: Int = 1) throws -> InferenceContext {
        try InferenceContext(model: m, options: ContextOptions(backend: backend, contextLength: 1024, slots: slots))
    }

    @Test func configAndPlanAreGemma3() throws {
        let m = try model()
        let c = m.config
        #expect(c.architecture.name == "gemma3" && c.blockCount == 18 && c.embeddingLength == 640 && c.headCount == 4)
        #expect(c.headCountKV == 1 && c.headDim == 256 && c.feedForwardLength == 2048 && c.vocabSize == 262_144 && c.ropeBase == 1e6)
        var global: [Int] = []
        for s in m.plan.steps {
            if case let .attention(w, scale) = s.action {
                if w == nil { global.append(s.op.layer!) } else { #expect(w == 512) }
                #expect(scale == 1.0 / 16)
            }
        }
        #expect(global == [5, 11, 17])
        #expect(m.weights.tiedEmbeddings)
    }

    @Test func tokenizerMatchesBothModes() throws {
        let tok = try #require(Self.tokenizer, "\(Self.missing)")
        #expect(tok.sentencePiece != nil && tok.addBOS && !tok.addSpacePrefix)
        let cases = try Self.lines("tokenizer.jsonl")
        #expect(cases.count >= 20)
        for c in cases {
            let text = c["text"] as! String
            #expect(tok.encode(text) == RealModel.ids(c["ids_plain"]), "plain: \(text.debugDescription)")
            #expect(tok.encode(text, special: true) == RealModel.ids(c["ids_special"]), "special: \(text.debugDescription)")
            // Decoding gives the text back (byte-fallback pieces joined into whole characters).
            #expect(tok.decode(RealModel.ids(c["ids_special"]), special: true) == text, "round trip: \(text.debugDescription)")
        }
    }

    @Test func chatPromptsUseGemmasTurns() throws {
        let m = try model()
        let tok = try #require(Self.tokenizer)
        let template = try ChatTemplate.of(m, eos: "<eos>")
        #expect(template.name == "gemma")
        var chats = 0
        for c in try Self.lines("greedy.jsonl") where c["chat"] as? Bool == true {
            let rendered = template.render([ChatMessage(role: "user", content: c["user"] as! String)])
            #expect(tok.encode(rendered, addSpecial: true) == RealModel.ids(c["prompt_ids"]), "\(c["user"]!)")
            // The same text through special parsing: the control tokens become their ids
            // (<start_of_turn> 105, <end_of_turn> 106); without it, they are spelled out.
            let text = c["prompt"] as! String
            let special = tok.encode(text, special: true, addSpecial: true)
            #expect(special == RealModel.ids(c["prompt_ids"]) && special.contains(105) && special.contains(106))
            #expect(!tok.encode(text).contains(105))
            chats += 1
        }
        #expect(chats >= 3)
    }

    /// Float32 weights against llama.cpp's float32 run: the top-20 logits within 5e-3.
    @Test(arguments: [Backend.simd, .blas])
    func f32LogitsMatchTheReference(backend: Backend) throws {
        let ctx = try context(try model(f32: true), backend)
        let cases = try Self.lines("logits.jsonl")
        #expect(cases.count == 7 && cases.contains { RealModel.ids($0["prompt_ids"]).count > 512 })
        for c in cases {
            ctx.resetAll()
            try ctx.prefill(RealModel.ids(c["prompt_ids"]))
            let logits = ctx.logits(row: 0)
            let want = (c["top20"] as! [[Double]]).map { (Int($0[0]), $0[1]) }
            let top = logits.indices.max { logits[$0] < logits[$1] }!
            #expect(top == want[0].0, "\(backend): top id for \(c["prompt"]!)")
            let worst = want.map { abs(Double(logits[$0.0]) - $0.1) }.maxOrNaN()!
            #expect(worst <= 5e-3, "\(backend): max top-20 logit difference \(worst) for \(c["prompt"]!)")
        }
    }

    /// The default path on the file's K-quant blocks (Q4_K, Q6_K, Q5_0, Q8_0) unpacks them to
    /// exactly the floats the f32 path dequantizes at load, with the same operation order: on simd
    /// the logits are the f32 path's bit for bit (which the test above checks against llama.cpp).
    @Test func nativeLogitsAreTheF32PathsBitForBit() throws {
        let native = try context(try model()), f32 = try context(try model(f32: true))
        let cases = try Self.lines("logits.jsonl").filter { RealModel.ids($0["prompt_ids"]).count <= 64 }
        #expect(cases.count >= 3)
        for c in cases {
            native.resetAll(); f32.resetAll()
            try native.prefill(RealModel.ids(c["prompt_ids"])); try f32.prefill(RealModel.ids(c["prompt_ids"]))
            #expect(native.logits(row: 0).map(\.bitPattern) == f32.logits(row: 0).map(\.bitPattern), "\(c["prompt"]!)")
        }
    }

    func greedy(_ m: Model, _ ctx: InferenceContext, _ c: [String: Any]) throws -> [Int32] {
        let generator = Generator(model: m, tokenizer: Self.tokenizer, context: ctx)
        var params = GenerationParameters()
        params.sampling = .greedy
        params.maxTokens = RealModel.ids(c["ids"]).count
        params.ignoreEOS = true
        return try generator.generate(promptIds: RealModel.ids(c["prompt_ids"]), parameters: params).ids
    }

    /// Greedy ids equal up to the reference's first margin below `margin`.
    func agree(_ got: [Int32], _ c: [String: Any], margin: Double) -> (Bool, Int) {
        let want = RealModel.ids(c["ids"]), margins = c["margins"] as! [Double]
        let upTo = min(want.count, margins.firstIndex { $0 < margin } ?? want.count)
        return (Array(got.prefix(upTo)) == Array(want.prefix(upTo)), upTo)
    }

    @Test func f32GreedyIdsMatchTheReference() throws {
        let m = try model(f32: true)
        let ctx = try context(m)
        for c in try Self.lines("greedy.jsonl") {
            let got = try greedy(m, ctx, c)
            let (ok, upTo) = agree(got, c, margin: 0.02)
            #expect(ok, "greedy ids for \(c["prompt"]!) (compared \(upTo) steps): \(got)")
        }
    }

    /// The default path (Q4_K, Q6_K, Q5_0, Q8_0 blocks as stored, float32 activations): greedy ids
    /// equal llama.cpp's quantized path up to its first margin below 0.16, or the float32
    /// reference up to its first margin below 0.02.
    @Test func defaultQuantizedPathMatchesAReference() throws {
        let m = try model()
        let ctx = try context(m)
        let quantized = try Self.lines("q4_k_m_path.jsonl"), float32 = try Self.lines("greedy.jsonl")
        #expect(quantized.count == float32.count)
        for (q, f) in zip(quantized, float32) {
            #expect(RealModel.ids(q["prompt_ids"]) == RealModel.ids(f["prompt_ids"]))
            let got = try greedy(m, ctx, f)
            let (okQ, nQ) = agree(got, q, margin: 0.16), (okF, nF) = agree(got, f, margin: 0.02)
            #expect(okQ || okF, "\(f["prompt"]!): neither llama.cpp's Q4_K_M path (\(nQ) steps) nor float32 (\(nF) steps): \(got)")
        }
    }

    /// A 977-token sequence (past the 512-token window) decoded alone, and in a continuous batch
    /// of 8: its prompt in chunks of 200 in the same steps as the other seven sequences' prompts
    /// and decode rows, then decoded beside them. The same logits, bit for bit, so the same ids.
    @Test func batchOfEightPastTheWindowEqualsAlone() throws {
        let m = try model()
        let cases = try Self.lines("greedy.jsonl")
        let long = RealModel.ids(cases.last!["prompt_ids"])
        #expect(long.count > 512)
        let others = cases.dropLast().map { RealModel.ids($0["prompt_ids"]) } + [Array(long.prefix(300))]
        #expect(others.count == 7)
        let steps = 4

        let alone = try context(m)
        try alone.prefill(long)
        var aloneIds: [Int32] = [], aloneLogits: [[Float]] = []
        for _ in 0 ..< steps {
            let l = alone.logits(row: 0)
            aloneLogits.append(l)
            let next = Int32(l.indices.max { l[$0] < l[$1] }!)
            aloneIds.append(next)
            var b = Batch(); b.add(slot: 0, token: next)
            try alone.evaluate(b)
        }

        let ctx = try InferenceContext(model: m, options: ContextOptions(backend: .simd, contextLength: 1024, slots: 8, maxBatchTokens: 512))
        var fed = 0, ids: [Int32] = [], step = 0, othersFed = [Bool](repeating: false, count: 7)
        var row0: Int?
        while ids.count < steps {
            var b = Batch(capacity: 512)
            if fed < long.count {
                let n = min(200, long.count - fed)
                row0 = b.add(slot: 0, tokens: long[fed ..< fed + n], logits: fed + n == long.count ? .last : .none)
                fed += n
            } else {
                let l = ctx.logits(row: row0!)
                #expect(l == aloneLogits[ids.count], "decode step \(ids.count): logits differ in the batch")
                let next = Int32(l.indices.max { l[$0] < l[$1] }!)
                ids.append(next)
                if ids.count == steps { break }
                row0 = b.add(slot: 0, token: next)
            }
            // The others: one new prompt per step, then one decode row each.
            for s in 0 ..< 7 where b.tokens.count < 500 {
                if !othersFed[s] {
                    if s <= step { b.add(slot: s + 1, tokens: others[s], logits: .last); othersFed[s] = true }
                } else {
                    b.add(slot: s + 1, token: Int32(1000 + s + step))
                }
            }
            try ctx.evaluate(b)
            step += 1
        }
        #expect(step > 7 && othersFed.allSatisfy { $0 }, "the batch did not mix prefill and decode: \(step) steps")
        #expect(ids == aloneIds)
    }
}
