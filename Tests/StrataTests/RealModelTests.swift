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
        #expect(c.ropeBase == 100000 && c.rmsEpsilon == 1e-5 && c.architecture.ropeStyle == .normal)
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

    @Test(arguments: Backend.allCases)
    func nextTokenLogitsMatchReference(backend: Backend) throws {
        let ctx = try context(backend)
        let cases = try RealModel.lines("logits.jsonl")
        #expect(cases.count == 6)
        for c in cases {
            let ids = RealModel.ids(c["prompt_ids"])
            ctx.resetAll()
            try ctx.prefill(ids)
            let logits = ctx.logits(row: 0)
            let ref = (c["top20"] as! [[Double]]).map { (Int($0[0]), $0[1]) }
            let ours = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(20)
            #expect(Set(ours) == Set(ref.map(\.0)), "\(backend) top-20 ids for \(c["prompt"]!)")
            var worst = 0.0
            for (id, l) in ref { worst = max(worst, abs(Double(logits[id]) - l)) }
            #expect(worst <= 1e-3, "\(backend): max logit difference \(worst) for \(c["prompt"]!)")
        }
    }

    @Test(arguments: Backend.allCases)
    func greedyIdsMatchReference(backend: Backend) throws {
        let ctx = try context(backend)
        let generator = Generator(model: try model(), tokenizer: RealModel.tokenizer, context: ctx)
        var params = GenerationParameters()
        params.sampling = .greedy
        params.maxTokens = 64
        params.ignoreEOS = true
        let cases = try RealModel.lines("greedy.jsonl")
        #expect(cases.count == 6)
        for c in cases {
            let want = RealModel.ids(c["ids"])
            let margins = c["margins"] as! [Double]
            let upTo = min(want.count, margins.firstIndex { $0 < 0.02 } ?? want.count)
            let got = try generator.generate(promptIds: RealModel.ids(c["prompt_ids"]), parameters: params).ids
            #expect(got.count == 64)
            #expect(Array(got.prefix(upTo)) == Array(want.prefix(upTo)), "\(backend) greedy ids for \(c["prompt"]!) (compared \(upTo) steps)")
        }
    }

    static let f32Model: Model? = try? Model(path: RealModel.path, weights: .f32)

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
                let d = zip(a, b).map { abs($0 - $1) }.max()!
                #expect(d <= 1e-4, "native vs f32 max logit difference \(d)")
            }
        }
    }

    /// Native weights are the only copy: the packed panels take at most 1.1 × the file's bytes
    /// for the same matrices, and the f32 path's float copy is about 7 times as much.
    @Test func nativePanelsAreAboutTheFileSize() throws {
        let m = try model()
        let fileBytes = m.weights.matrices.reduce(0) { $0 + $1.bytes }
        let packed = m.packedWeights().bytes
        #expect(Double(packed) <= 1.1 * Double(fileBytes), "packed \(packed) B vs file \(fileBytes) B")
        #expect(m.weights.matrices.allSatisfy { !$0.isFloat })
        let f32 = try #require(Self.f32Model)
        #expect(f32.weights.matrices.allSatisfy(\.isFloat) && f32.weights.bytes > 5 * m.weights.bytes)
    }

    @Test func backendsAgreeOnRealLogits() throws {
        let blas = try context(.blas), naive = try context(.naive)
        for c in try RealModel.lines("logits.jsonl") {
            let ids = RealModel.ids(c["prompt_ids"])
            blas.resetAll(); naive.resetAll()
            try blas.prefill(ids); try naive.prefill(ids)
            let a = blas.logits(row: 0), b = naive.logits(row: 0)
            let d = zip(a, b).map { abs($0 - $1) }.max()!
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
