import Foundation

/// A BERT-style encoder turned sentence embedder, as sentence-transformers runs all-MiniLM-L6-v2:
/// WordPiece ids → word + learned position + token-type embeddings → LayerNorm → N post-LayerNorm
/// blocks (bidirectional self-attention over the sentence's own tokens, then a GELU (erf)
/// feed-forward, each followed by residual add and LayerNorm) → mean over the tokens → L2
/// normalisation.
///
/// Sentences of different lengths run as one ragged batch: every linear layer is one matrix
/// multiply over all the batch's tokens (no padding), attention runs per sentence and head. The
/// matrix multiplies use the chosen backend's kernels (`simd` on weights packed once at load,
/// `blas`, `naive`), so a row's result does not depend on the other sentences in the batch.
public final class SentenceEncoder: @unchecked Sendable {
    public struct Config: Sendable {
        public let layers, hidden, heads, intermediate, maxPositions, vocabSize, typeVocabSize: Int
        public let layerNormEps: Float
        /// sentence-transformers' `max_seq_length` (tokens, [CLS] and [SEP] included).
        public let maxSeqLength: Int
        public var headDim: Int { hidden / heads }
    }

    struct Linear {
        let weight: FloatBuffer   // [out, in]
        let bias: FloatBuffer     // [out]
        let packed: PackedMatrix?
        let rows: Int, cols: Int
    }

    struct Layer {
        let query, key, value, attnOut, intermediate, output: Linear
        let attnNormW, attnNormB, outNormW, outNormB: FloatBuffer
    }

    public let config: Config
    public let tokenizer: WordPieceTokenizer
    public let backend: Backend
    let wordEmb, posEmb, typeEmb, embNormW, embNormB: FloatBuffer
    let layers: [Layer]

    /// Loads a sentence-transformers folder (`config.json`, `model.safetensors`, `tokenizer.json`,
    /// optional `sentence_bert_config.json` and `1_Pooling/config.json`, which must ask for mean pooling).
    public init(folder: String, backend: Backend = .simd) throws {
        self.backend = backend
        func json(_ name: String) throws -> [String: Any]? {
            guard let d = FileManager.default.contents(atPath: folder + "/" + name) else { return nil }
            guard let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else {
                throw SafetensorsError.badHeader(path: folder + "/" + name, reason: "not a JSON object")
            }
            return o
        }
        guard let cfg = try json("config.json") else {
            throw SafetensorsError.missingTensor(path: folder, name: "config.json (not a sentence-transformers folder)")
        }
        func int(_ k: String, _ lo: Int, _ hi: Int) throws -> Int {
            guard let v = cfg[k] as? Int, v >= lo, v <= hi else {
                throw SafetensorsError.badHeader(path: folder + "/config.json", reason: "'\(k)' must be an integer in \(lo)…\(hi)")
            }
            return v
        }
        if let type = cfg["model_type"] as? String, type != "bert" {
            throw SafetensorsError.badHeader(path: folder + "/config.json", reason: "model_type '\(type)' is not supported (bert only)")
        }
        if let act = cfg["hidden_act"] as? String, act != "gelu" {
            throw SafetensorsError.badHeader(path: folder + "/config.json", reason: "hidden_act '\(act)' is not supported (gelu only)")
        }
        if let pool = try json("1_Pooling/config.json"), pool["pooling_mode_mean_tokens"] as? Bool != true {
            throw SafetensorsError.badHeader(path: folder + "/1_Pooling/config.json", reason: "only mean pooling is supported")
        }
        let hidden = try int("hidden_size", 1, 1 << 14), heads = try int("num_attention_heads", 1, 1024)
        guard hidden % heads == 0 else { throw SafetensorsError.badHeader(path: folder + "/config.json", reason: "hidden_size is not a multiple of num_attention_heads") }
        let maxPos = try int("max_position_embeddings", 1, 1 << 16)
        let stMax = (try json("sentence_bert_config.json"))?["max_seq_length"] as? Int ?? maxPos
        config = Config(layers: try int("num_hidden_layers", 1, 1024), hidden: hidden, heads: heads,
                        intermediate: try int("intermediate_size", 1, 1 << 16), maxPositions: maxPos,
                        vocabSize: try int("vocab_size", 1, 1 << 22), typeVocabSize: try int("type_vocab_size", 1, 1024),
                        layerNormEps: Float(cfg["layer_norm_eps"] as? Double ?? 1e-12), maxSeqLength: max(2, min(stMax, maxPos)))
        tokenizer = try WordPieceTokenizer(folder: folder)
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw SafetensorsError.badHeader(path: folder + "/tokenizer.json", reason: "\(tokenizer.vocabularySize) tokens but vocab_size \(config.vocabSize)")
        }
        let st = try SafetensorsFile(path: folder + "/model.safetensors")
        let c = config
        // Some exports prefix every name with "bert.".
        let pre = st.tensors["embeddings.word_embeddings.weight"] == nil && st.tensors["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        func t(_ name: String, _ shape: [Int]) throws -> FloatBuffer { try st.floats(pre + name, shape: shape) }
        func linear(_ name: String, out: Int, in k: Int) throws -> Linear {
            let w = try t(name + ".weight", [out, k])
            return Linear(weight: w, bias: try t(name + ".bias", [out]), packed: backend == .simd ? PackedMatrix(w, rows: out, cols: k) : nil, rows: out, cols: k)
        }
        wordEmb = try t("embeddings.word_embeddings.weight", [c.vocabSize, c.hidden])
        posEmb = try t("embeddings.position_embeddings.weight", [c.maxPositions, c.hidden])
        typeEmb = try t("embeddings.token_type_embeddings.weight", [c.typeVocabSize, c.hidden])
        embNormW = try t("embeddings.LayerNorm.weight", [c.hidden])
        embNormB = try t("embeddings.LayerNorm.bias", [c.hidden])
        layers = try (0 ..< c.layers).map { i in
            let b = "encoder.layer.\(i)."
            return Layer(query: try linear(b + "attention.self.query", out: c.hidden, in: c.hidden),
                         key: try linear(b + "attention.self.key", out: c.hidden, in: c.hidden),
                         value: try linear(b + "attention.self.value", out: c.hidden, in: c.hidden),
                         attnOut: try linear(b + "attention.output.dense", out: c.hidden, in: c.hidden),
                         intermediate: try linear(b + "intermediate.dense", out: c.intermediate, in: c.hidden),
                         output: try linear(b + "output.dense", out: c.hidden, in: c.intermediate),
                         attnNormW: try t(b + "attention.output.LayerNorm.weight", [c.hidden]),
                         attnNormB: try t(b + "attention.output.LayerNorm.bias", [c.hidden]),
                         outNormW: try t(b + "output.LayerNorm.weight", [c.hidden]),
                         outNormB: try t(b + "output.LayerNorm.bias", [c.hidden]))
        }
    }

    /// Token ids of a text: `[CLS] … [SEP]`, truncated at `maxSeqLength`.
    public func encode(_ text: String) -> [Int32] { tokenizer.encode(text, maxLength: config.maxSeqLength) }

    /// Unit-length sentence embeddings of `texts`, in order, computed as one ragged batch.
    public func embed(_ texts: [String]) throws -> [(ids: [Int32], embedding: [Float])] {
        let ids = texts.map(encode)
        return zip(ids, try embed(ids: ids)).map { ($0, $1) }
    }

    /// Embeddings for sequences of ids (each at most `maxSeqLength`, ids inside the vocabulary).
    public func embed(ids batch: [[Int32]]) throws -> [[Float]] {
        let c = config, E = c.hidden, H = c.heads, D = c.headDim
        for seq in batch {
            guard !seq.isEmpty else { throw InferenceError.emptyPrompt }
            guard seq.count <= c.maxSeqLength else { throw InferenceError.promptTooLong(tokens: seq.count, contextLength: c.maxSeqLength) }
            for t in seq where t < 0 || Int(t) >= c.vocabSize { throw InferenceError.tokenOutOfRange(id: t, vocabSize: c.vocabSize) }
        }
        let T = batch.reduce(0) { $0 + $1.count }
        guard T > 0 else { return [] }
        var starts: [Int] = []
        var s0 = 0
        for seq in batch { starts.append(s0); s0 += seq.count }
        let x = FloatBuffer(count: T * E), tmp = FloatBuffer(count: T * E)
        let q = FloatBuffer(count: T * E), k = FloatBuffer(count: T * E), v = FloatBuffer(count: T * E), att = FloatBuffer(count: T * E)
        let ff = FloatBuffer(count: T * c.intermediate)
        let maxLen = batch.map(\.count).max()!
        let threads = ThreadPool.shared.width
        // A row of attention scores per thread (simd), or a square per sequence (blas, naive).
        // Per thread (simd): a row of scores and the head's keys transposed; else one square.
        let scores = FloatBuffer(count: backend == .simd ? threads * (D + 1) * maxLen : maxLen * maxLen)

        // Embeddings: word + position + token type 0, then LayerNorm.
        for (s, seq) in batch.enumerated() {
            for (p, id) in seq.enumerated() {
                let row = x.base + (starts[s] + p) * E
                let w = wordEmb.base + Int(id) * E, pe = posEmb.base + p * E
                for j in 0 ..< E { row[j] = w[j] + pe[j] + typeEmb.base[j] }
            }
        }
        Self.rows(T) { r in Self.layerNorm(x.base + r * E, E, weight: embNormW, bias: embNormB, eps: c.layerNormEps) }

        let scale = 1 / Float(D).squareRoot()
        for l in layers {
            linear(x, l.query, q, T); linear(x, l.key, k, T); linear(x, l.value, v, T)
            // Bidirectional attention within each sentence, head by head.
            if backend == .simd && D % 8 == 0 {
                // Each (sentence, head) pair whole on one thread, pairs dealt out in turn: a
                // sentence's result does not depend on the others in the batch, or on the thread.
                let pairs = batch.count * H
                ThreadPool.shared.run(parts: min(threads, pairs)) { t, parts in
                    let sc = scores.base + t * (D + 1) * maxLen, kt = sc + maxLen
                    var pair = t
                    while pair < pairs {
                        let s = pair / H, h = pair % H, n = batch[s].count, r0 = starts[s]
                        Self.attention(q: q.base + r0 * E + h * D, k: k.base + r0 * E + h * D, v: v.base + r0 * E + h * D,
                                       out: att.base + r0 * E + h * D, n: n, headDim: D, stride: E, scale: scale, scores: sc, kt: kt)
                        pair += parts
                    }
                }
            } else {
                for (s, seq) in batch.enumerated() {
                    let n = seq.count, r0 = starts[s]
                    for h in 0 ..< H {
                        let qh = q.matrix(offset: r0 * E + h * D, rows: n, cols: D, stride: E)
                        let kh = k.matrix(offset: r0 * E + h * D, rows: n, cols: D, stride: E)
                        let vh = v.matrix(offset: r0 * E + h * D, rows: n, cols: D, stride: E)
                        let sc = scores.matrix(rows: n, cols: n)
                        GEMM.run(backend, a: qh, b: kh, c: sc, transB: true)
                        for i in 0 ..< n { SIMDMath.softmax(sc.row(i), n, scale: scale) }
                        GEMM.run(backend, a: sc, b: vh, c: att.matrix(offset: r0 * E + h * D, rows: n, cols: D, stride: E), transB: false)
                    }
                }
            }
            linear(att, l.attnOut, tmp, T)
            Self.rows(T) { r in
                SIMDMath.axpy(1, tmp.base + r * E, x.base + r * E, E)
                Self.layerNorm(x.base + r * E, E, weight: l.attnNormW, bias: l.attnNormB, eps: c.layerNormEps)
            }
            linear(x, l.intermediate, ff, T)
            Self.rows(T) { r in SIMDMath.geluErf(ff.base + r * c.intermediate, c.intermediate) }
            linear(ff, l.output, tmp, T)
            Self.rows(T) { r in
                SIMDMath.axpy(1, tmp.base + r * E, x.base + r * E, E)
                Self.layerNorm(x.base + r * E, E, weight: l.outNormW, bias: l.outNormB, eps: c.layerNormEps)
            }
        }

        // Mean over each sentence's tokens (all of them: no padding), then unit length.
        return batch.enumerated().map { s, seq in
            var mean = [Double](repeating: 0, count: E)
            for p in 0 ..< seq.count {
                let row = x.base + (starts[s] + p) * E
                for j in 0 ..< E { mean[j] += Double(row[j]) }
            }
            let inv = 1 / Double(seq.count)
            for j in 0 ..< E { mean[j] *= inv }
            let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return mean.map { Float($0 / norm) }
        }
    }

    /// `out[T, l.rows] = a[T, l.cols] · Wᵀ + b` on the encoder's backend.
    private func linear(_ a: FloatBuffer, _ l: Linear, _ out: FloatBuffer, _ T: Int) {
        let am = a.matrix(rows: T, cols: l.cols), om = out.matrix(rows: T, cols: l.rows)
        if let p = l.packed {
            PackedGEMM.parallel(a: am, w: p, c: om, accumulate: false, threads: ThreadPool.shared.width)
        } else {
            GEMM.run(backend, a: am, b: l.weight.matrix(rows: l.rows, cols: l.cols), c: om, transB: true)
        }
        Self.rows(T) { r in SIMDMath.axpy(1, l.bias.base, om.row(r), l.rows) }
    }

    /// One sentence's attention in one head: `n` rows of `headDim` in `q`, `k`, `v` and `out`,
    /// `stride` apart. The keys are transposed into `kt` (`headDim × n`), so each query's scores
    /// are `headDim` multiply-adds along the keys (no horizontal sums); the output accumulates in
    /// registers, 32 floats at a time. `headDim` is a multiple of 8.
    static func attention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                          n: Int, headDim D: Int, stride E: Int, scale: Float,
                          scores sc: UnsafeMutablePointer<Float>, kt: UnsafeMutablePointer<Float>) {
        typealias V = SIMDMath.V
        for j in 0 ..< n { for d in 0 ..< D { kt[d * n + j] = k[j * E + d] } }
        for i in 0 ..< n {
            let qi = q + i * E
            for j in 0 ..< n { sc[j] = 0 }
            for d in 0 ..< D { SIMDMath.axpy(qi[d], kt + d * n, sc, n) }
            SIMDMath.softmax(sc, n, scale: scale)
            let o = out + i * E
            var d0 = 0
            while d0 < D {
                let w = min(4, (D - d0) / 8)
                var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                for j in 0 ..< n {
                    let p = V(repeating: sc[j]), row = v + j * E + d0
                    a0.addProduct(p, SIMDMath.load(row))
                    if w > 1 { a1.addProduct(p, SIMDMath.load(row + 8)) }
                    if w > 2 { a2.addProduct(p, SIMDMath.load(row + 16)) }
                    if w > 3 { a3.addProduct(p, SIMDMath.load(row + 24)) }
                }
                SIMDMath.store(a0, o + d0)
                if w > 1 { SIMDMath.store(a1, o + d0 + 8) }
                if w > 2 { SIMDMath.store(a2, o + d0 + 16) }
                if w > 3 { SIMDMath.store(a3, o + d0 + 24) }
                d0 += 8 * w
            }
        }
    }

    /// `body(r)` for every row, rows split across the thread pool (each row on one thread, so its
    /// result does not depend on the split).
    static func rows(_ T: Int, _ body: (Int) -> Void) {
        ThreadPool.shared.run(parts: min(ThreadPool.shared.width, max(T / 16, 1))) { t, n in
            for r in T * t / n ..< T * (t + 1) / n { body(r) }
        }
    }

    /// LayerNorm of one row in place: (x − mean) / √(var + eps) · w + b, statistics over 8 lanes.
    static func layerNorm(_ row: UnsafeMutablePointer<Float>, _ n: Int, weight: FloatBuffer, bias: FloatBuffer, eps: Float) {
        let mean = SIMDMath.sum(row, n) / Float(n)
        var sq = SIMDMath.V(), i = 0
        let m = SIMDMath.V(repeating: mean)
        while i + 8 <= n { let d = SIMDMath.load(row + i) - m; sq.addProduct(d, d); i += 8 }
        var variance = sq.sum()
        while i < n { let d = row[i] - mean; variance += d * d; i += 1 }
        let inv = 1 / (variance / Float(n) + eps).squareRoot()
        let vinv = SIMDMath.V(repeating: inv)
        i = 0
        while i + 8 <= n {
            var y = (SIMDMath.load(row + i) - m) * vinv * SIMDMath.load(weight.base + i)
            y += SIMDMath.load(bias.base + i)
            SIMDMath.store(y, row + i)
            i += 8
        }
        while i < n { row[i] = (row[i] - mean) * inv * weight.base[i] + bias.base[i]; i += 1 }
    }
}
