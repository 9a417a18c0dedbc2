import Foundation
import Testing
@testable import Strata

@Suite struct ForwardTests {
    static let tiny = try! TinyModel().load()
    let tokens: [Int32] = [5, 40, 77, 100, 3, 250, 18, 9, 61, 200, 33, 140]

    func lastLogits(_ model: Model, _ ids: [Int32], backend: Backend = .blas, chunk: Int = 512) throws -> [Float] {
        let ctx = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 64, maxBatchTokens: chunk))
        try ctx.prefill(ids)
        return ctx.logits(row: 0)
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.maxOrNaN() ?? 0
    }

    @Test func configMirrorsTheFile() {
        let c = Self.tiny.config
        #expect(c.blockCount == 2 && c.embeddingLength == 64 && c.headCount == 4 && c.headCountKV == 2)
        #expect(c.headDim == 16 && c.kvDim == 32 && c.groupSize == 2 && c.vocabSize == TinyModel.vocabulary().tokens.count)
        #expect(Self.tiny.weights.tiedEmbeddings)
    }

    @Test func blasAndNaiveAgree() throws {
        let a = try lastLogits(Self.tiny, tokens, backend: .blas)
        let b = try lastLogits(Self.tiny, tokens, backend: .naive)
        #expect(maxDiff(a, b) <= 1e-4)
        #expect(a.contains { $0 != 0 })
    }

    @Test(arguments: Backend.allCases)
    func incrementalDecodeEqualsFullRecompute(backend: Backend) throws {
        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: backend, contextLength: 64))
        try ctx.prefill(tokens[0 ..< 3])
        var batch = Batch()
        for t in 3 ..< tokens.count {
            let fresh = try lastLogits(Self.tiny, Array(tokens[0 ..< t]), backend: backend)
            let cached = ctx.logits(row: 0)
            #expect(maxDiff(fresh, cached) <= 1e-4, "step \(t)")
            batch.removeAll()
            batch.add(slot: 0, token: tokens[t])
            try ctx.evaluate(batch)
        }
    }

    @Test func chunkedPrefillEqualsOnePass() throws {
        let one = try lastLogits(Self.tiny, tokens)
        for chunk in [1, 3, 5] {
            #expect(maxDiff(one, try lastLogits(Self.tiny, tokens, chunk: chunk)) <= 1e-4, "chunk \(chunk)")
        }
    }

    @Test func allPositionLogitsMatchPrefixes() throws {
        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(contextLength: 64, maxLogitsRows: 16))
        var batch = Batch()
        batch.add(slot: 0, tokens: tokens, logits: .all)
        try ctx.evaluate(batch)
        for t in [1, 4, tokens.count] {
            #expect(maxDiff(ctx.logits(row: t - 1), try lastLogits(Self.tiny, Array(tokens[0 ..< t]))) <= 1e-4)
        }
    }

    @Test(arguments: Backend.allCases)
    func raggedBatchEqualsSequences(backend: Backend) throws {
        let seqs: [[Int32]] = [[4, 9, 2, 77, 31], [100], [8, 8, 8], [250, 1, 60, 61, 62, 63, 64]]
        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: backend, contextLength: 32, slots: 4))
        var batch = Batch()
        var rows: [Int] = []
        for (s, ids) in seqs.enumerated() { rows.append(batch.add(slot: s, tokens: ids, logits: .last)) }
        try ctx.evaluate(batch)
        // Naive and simd kernels compute each row the same way whatever the batch: bitwise equal.
        // BLAS picks different code paths for different row counts (sgemv for one row), so allow
        // rounding.
        let tolerance: Float = backend == .blas ? 1e-4 : 0
        for (s, ids) in seqs.enumerated() {
            #expect(maxDiff(ctx.logits(row: rows[s]), try lastLogits(Self.tiny, ids, backend: backend)) <= tolerance, "sequence \(s)")
        }
        // A decode step for two slots at different lengths.
        batch.removeAll()
        let r0 = batch.add(slot: 0, token: 11), r3 = batch.add(slot: 3, token: 12)
        try ctx.evaluate(batch)
        #expect(maxDiff(ctx.logits(row: r0), try lastLogits(Self.tiny, seqs[0] + [11], backend: backend)) <= tolerance)
        #expect(maxDiff(ctx.logits(row: r3), try lastLogits(Self.tiny, seqs[3] + [12], backend: backend)) <= tolerance)
        #expect(ctx.lengths == [6, 1, 3, 8])
    }

    /// `--cache-type f16`: half the cache bytes; keys and values rounded to half precision, so the
    /// logits move (a little) from the float32 cache's; every backend reads the half cache row by
    /// row, so a ragged batch gives each sequence's logits bit for bit (blas: within rounding, as
    /// its GEMMs differ by row count), and decoding on the cache equals recomputing the prefix.
    @Test(arguments: Backend.allCases)
    func halfPrecisionCache(backend: Backend) throws {
        let seqs: [[Int32]] = [[4, 9, 2, 77, 31], [100], [250, 1, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77]]
        func options(_ slots: Int, _ type: KVCacheType) -> ContextOptions {
            ContextOptions(backend: backend, contextLength: 48, slots: slots, cacheType: type)
        }
        func alone(_ ids: [Int32], _ type: KVCacheType) throws -> [Float] {
            let ctx = try InferenceContext(model: Self.tiny, options: options(1, type))
            try ctx.prefill(ids)
            return ctx.logits(row: 0)
        }
        let tolerance: Float = backend == .blas ? 1e-4 : 0
        let ctx = try InferenceContext(model: Self.tiny, options: options(seqs.count, .f16))
        let full = try InferenceContext(model: Self.tiny, options: options(seqs.count, .f32))
        #expect(ctx.cacheType == .f16 && 2 * ctx.kvCacheBytes == full.kvCacheBytes)
        var batch = Batch()
        let rows = seqs.enumerated().map { batch.add(slot: $0.offset, tokens: $0.element, logits: .last) }
        try ctx.evaluate(batch)
        for (s, ids) in seqs.enumerated() {
            let half = try alone(ids, .f16), full = try alone(ids, .f32)
            #expect(maxDiff(ctx.logits(row: rows[s]), half) <= tolerance, "sequence \(s): batched vs alone")
            let d = maxDiff(half, full)
            #expect(d <= 2e-2 && d > 0, "sequence \(s): f16 vs f32 cache differ by \(d)")
        }
        // One decode step on the cache equals the prefix recomputed.
        batch.removeAll()
        let r = batch.add(slot: 2, token: 11)
        try ctx.evaluate(batch)
        let recomputed = try alone(seqs[2] + [11], .f16)
        #expect(maxDiff(ctx.logits(row: r), recomputed) <= tolerance)
    }

    /// The logit lens after block 0 of the two-layer tiny model is exactly the logits of a one-layer
    /// model with the same first block (the writer draws weights in file order, so the one-layer
    /// file holds the same token embedding, output norm and block 0); after the last block it is
    /// the step's own logits. Bit for bit on simd and naive, within rounding on blas.
    @Test(arguments: Backend.allCases)
    func logitLensAgreesWithATruncatedModel(backend: Backend) throws {
        let oneLayer = try TinyModel(layers: 1).load()
        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: backend, contextLength: 64))
        let lens = LogitLens(config: Self.tiny.config)
        ctx.logitLens = lens
        try ctx.prefill(tokens)
        let tolerance: Float = backend == .blas ? 1e-4 : 0
        #expect(maxDiff(lens.logits(afterLayer: 1), ctx.logits(row: 0)) <= tolerance)
        let truncated = try InferenceContext(model: oneLayer, options: ContextOptions(backend: backend, contextLength: 64))
        try truncated.prefill(tokens)
        #expect(maxDiff(lens.logits(afterLayer: 0), truncated.logits(row: 0)) <= tolerance)
        #expect(maxDiff(lens.logits(afterLayer: 0), lens.logits(afterLayer: 1)) > 0.01, "the two blocks' readings should differ")
    }

    /// Attention capture on the tiny model: every backend records the same distributions (within
    /// rounding), causal and normalised.
    @Test func attentionCaptureAgreesAcrossBackends() throws {
        func capture(_ backend: Backend) throws -> [[[Float]]] {
            let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: backend, contextLength: tokens.count))
            let cap = AttentionCapture(layers: [1], heads: 4, rows: tokens.count, positions: ctx.contextLength)
            ctx.attentionCapture = cap
            var batch = Batch()
            batch.add(slot: 0, tokens: tokens, logits: .last)
            try ctx.evaluate(batch)
            return cap.probabilities(layer: 1)
        }
        let ref = try capture(.naive)
        for (h, rows) in ref.enumerated() {
            for (q, row) in rows.enumerated() {
                #expect(abs(row.reduce(0, +) - 1) < 1e-5 && row[(q + 1)...].allSatisfy { $0 == 0 } && row[0 ... q].allSatisfy { $0 > 0 }, "head \(h) row \(q)")
            }
        }
        for b in [Backend.simd, .blas] {
            let got = try capture(b)
            let d = zip(got.joined(), ref.joined()).map { zip($0, $1).map { abs($0 - $1) }.maxOrNaN()! }.maxOrNaN()!
            #expect(d <= 1e-5, "\(b) vs naive: \(d)")
        }
    }

    @Test func untiedOutputQuantizedWeightsAndQwen2Biases() throws {
        var spec = TinyModel()
        spec.tied = false
        spec.weightType = .q8_0
        let m = try spec.load()
        #expect(!m.weights.tiedEmbeddings)
        #expect(maxDiff(try lastLogits(m, tokens, backend: .blas), try lastLogits(m, tokens, backend: .naive)) <= 1e-4)
        var q = TinyModel()
        q.architecture = "qwen2"
        let qm = try q.load()
        #expect(qm.weights.vectorByName["blk.0.attn_q.bias"] != nil)
        #expect(qm.plan.steps.contains { if case let .rope(r) = $0.action { r.style == .neox } else { false } })
        let ctx = try InferenceContext(model: qm, options: ContextOptions(contextLength: 32))
        try ctx.prefill(tokens[0 ..< 4])
        var b = Batch(); b.add(slot: 0, token: tokens[4])
        try ctx.evaluate(b)
        #expect(maxDiff(ctx.logits(row: 0), try lastLogits(qm, Array(tokens[0 ..< 5]))) <= 1e-4)
    }

    @Test func rejectsBadModels() throws {
        var spec = TinyModel()
        spec.architecture = "gpt2"
        #expect(throws: ModelError.unsupportedArchitecture("gpt2", supported: ["gemma3", "llama", "mistral", "phi3", "qwen2"])) { try spec.load() }
        spec = TinyModel()
        spec.omit = ["blk.1.ffn_down.weight"]
        #expect(throws: ModelError.missingTensor("blk.1.ffn_down.weight")) { try spec.load() }
        spec = TinyModel()
        spec.reshape = ["blk.0.attn_k.weight": [64, 48]]
        #expect(throws: ModelError.wrongShape(tensor: "blk.0.attn_k.weight", expected: [64, 32], found: [64, 48])) { try spec.load() }
        spec = TinyModel()
        spec.heads = 5
        #expect(throws: ModelError.self) { try spec.load() }
    }

    @Test func rejectsBadInputToTheContext() throws {
        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(contextLength: 8, maxBatchTokens: 4))
        #expect(throws: InferenceError.contextFull(slot: 0, length: 0, adding: 9, contextLength: 8)) {
            try ctx.prefill([Int32](repeating: 5, count: 9))
        }
        var b = Batch()
        b.add(slot: 0, tokens: [1, 2, 3, 4, 5] as [Int32])
        #expect(throws: InferenceError.batchTooLarge(rows: 5, max: 4)) { try ctx.evaluate(b) }
        b.removeAll(); b.add(slot: 0, token: 100_000)
        #expect(throws: InferenceError.tokenOutOfRange(id: 100_000, vocabSize: ctx.vocabSize)) { try ctx.evaluate(b) }
        b.removeAll(); b.add(slot: 2, token: 1)
        #expect(throws: InferenceError.badSlot(2, slots: 1)) { try ctx.evaluate(b) }
        #expect(ctx.lengths == [0])
        b.removeAll(); b.add(slot: 0, token: 1, logits: false); b.add(slot: 0, token: 2)
        #expect(throws: InferenceError.slotRepeated(0)) { try ctx.evaluate(b) }
        #expect(ctx.lengths == [0])
        #expect(throws: InferenceError.self) { try InferenceContext(model: Self.tiny, options: ContextOptions(contextLength: 0)) }
        // A KV cache larger than memory is refused before allocating.
        #expect(throws: InferenceError.self) {
            try InferenceContext(model: Self.tiny, options: ContextOptions(contextLength: 1 << 22, slots: 4096))
        }
    }

    @Test func observerSeesEveryOpAndAddsUp() throws {
        final class Recorder: ExecutionObserver {
            var events: [(OpKind, Int?, UInt64)] = []
            func record(kind: OpKind, layer: Int?, rows: Int, pairs: Int, start: UInt64, duration: UInt64) {
                events.append((kind, layer, duration))
            }
        }
        // The simd backend runs every attention row through its fused kernel.
        let fused = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: .simd, contextLength: 64))
        let seen = Recorder()
        fused.observer = seen
        try fused.prefill(tokens)
        let fusedKinds = Set(seen.events.map(\.0))
        // Every kind the plan has is recorded (the Llama plan has no fused or Gemma-only ops).
        let planned = Set(Self.tiny.plan.ops.map(\.kind))
        #expect(planned.count == 16 && !planned.contains(.attnQKV) && !planned.contains(.postFfwNorm))
        for k in planned.union([.attnFused]) where ![.sampling, .attnScores, .attnSoftmax, .attnValues].contains(k) {
            #expect(fusedKinds.contains(k), "simd: \(k) not recorded")
        }
        #expect(!fusedKinds.contains(.attnScores))

        let ctx = try InferenceContext(model: Self.tiny, options: ContextOptions(backend: .blas, contextLength: 64))
        let rec = Recorder()
        ctx.observer = rec
        try ctx.prefill(tokens)
        let kinds = Set(rec.events.map(\.0))
        for k in planned.union([.attnSoftmax, .attnValues]) { #expect(kinds.contains(k), "\(k) not recorded") }
        // A decode row takes the fused attention kernel on the BLAS backend.
        var b = Batch(); b.add(slot: 0, token: 3)
        let before = rec.events.count
        try ctx.evaluate(b)
        #expect(rec.events[before...].contains { $0.0 == .attnFused })
        #expect(!rec.events[before...].contains { $0.0 == .attnScores })
        rec.events.removeSubrange(before...)
        #expect(Set(rec.events.compactMap(\.1)) == [0, 1])
        #expect(rec.events.filter { $0.0 == .attnQ }.count == 2)
    }
}
