import Dispatch

/// One transformer block's weights, named after the GGUF tensors (`blk.N.attn_q.weight` → `attnQ`),
/// dequantized to float32. Matrices are stored as ggml stores them: one row per output.
/// A class, so that the executor's per-op access costs one reference, not twelve.
public final class LayerWeights: Sendable {
    public let attnNorm: FloatBuffer     // [embd]
    public let attnQ: FloatBuffer        // [qDim, embd]
    public let attnK: FloatBuffer        // [kvDim, embd]
    public let attnV: FloatBuffer        // [kvDim, embd]
    public let attnQBias: FloatBuffer?   // [qDim]
    public let attnKBias: FloatBuffer?   // [kvDim]
    public let attnVBias: FloatBuffer?   // [kvDim]
    public let attnOutput: FloatBuffer   // [embd, qDim]
    public let ffnNorm: FloatBuffer      // [embd]
    public let ffnGate: FloatBuffer      // [ff, embd]
    public let ffnUp: FloatBuffer        // [ff, embd]
    public let ffnDown: FloatBuffer      // [embd, ff]

    init(attnNorm: FloatBuffer, attnQ: FloatBuffer, attnK: FloatBuffer, attnV: FloatBuffer, attnQBias: FloatBuffer?,
         attnKBias: FloatBuffer?, attnVBias: FloatBuffer?, attnOutput: FloatBuffer, ffnNorm: FloatBuffer,
         ffnGate: FloatBuffer, ffnUp: FloatBuffer, ffnDown: FloatBuffer) {
        self.attnNorm = attnNorm; self.attnQ = attnQ; self.attnK = attnK; self.attnV = attnV
        self.attnQBias = attnQBias; self.attnKBias = attnKBias; self.attnVBias = attnVBias
        self.attnOutput = attnOutput; self.ffnNorm = ffnNorm; self.ffnGate = ffnGate; self.ffnUp = ffnUp; self.ffnDown = ffnDown
    }
}

/// All weights of a model.
public struct ModelWeights: Sendable {
    public let tokenEmbd: FloatBuffer    // [vocab, embd]
    public let outputNorm: FloatBuffer   // [embd]
    /// The LM head; the same buffer as `tokenEmbd` when the model ties them (no `output.weight`).
    public let output: FloatBuffer       // [vocab, embd]
    public let layers: [LayerWeights]
    public var tiedEmbeddings: Bool { output === tokenEmbd }

    /// Total float32 parameters held (tied weights counted once).
    public var parameterCount: Int {
        var n = tokenEmbd.count + outputNorm.count + (tiedEmbeddings ? 0 : output.count)
        for l in layers {
            n += l.attnNorm.count + l.attnQ.count + l.attnK.count + l.attnV.count + l.attnOutput.count
            n += l.ffnNorm.count + l.ffnGate.count + l.ffnUp.count + l.ffnDown.count
            n += (l.attnQBias?.count ?? 0) + (l.attnKBias?.count ?? 0) + (l.attnVBias?.count ?? 0)
        }
        return n
    }

    /// Reads every tensor the config calls for, checks its shape, and dequantizes it (in parallel).
    init(gguf: GGUFFile, config c: ModelConfig) throws {
        // The shape each tensor must have, in ggml order ([in, out]).
        var wanted: [(String, [Int])] = [
            ("token_embd.weight", [c.embeddingLength, c.vocabSize]),
            ("output_norm.weight", [c.embeddingLength]),
        ]
        let tied = gguf.tensorInfo("output.weight") == nil
        if !tied { wanted.append(("output.weight", [c.embeddingLength, c.vocabSize])) }
        for i in 0 ..< c.blockCount {
            let b = "blk.\(i)."
            wanted += [
                (b + "attn_norm.weight", [c.embeddingLength]),
                (b + "attn_q.weight", [c.embeddingLength, c.qDim]),
                (b + "attn_k.weight", [c.embeddingLength, c.kvDim]),
                (b + "attn_v.weight", [c.embeddingLength, c.kvDim]),
                (b + "attn_output.weight", [c.qDim, c.embeddingLength]),
                (b + "ffn_norm.weight", [c.embeddingLength]),
                (b + "ffn_gate.weight", [c.embeddingLength, c.feedForwardLength]),
                (b + "ffn_up.weight", [c.embeddingLength, c.feedForwardLength]),
                (b + "ffn_down.weight", [c.feedForwardLength, c.embeddingLength]),
            ]
            if c.architecture.qkvBias {
                wanted += [(b + "attn_q.bias", [c.qDim]), (b + "attn_k.bias", [c.kvDim]), (b + "attn_v.bias", [c.kvDim])]
            }
        }
        var found: [GGUFTensorInfo] = []
        for (name, shape) in wanted {
            guard let info = gguf.tensorInfo(name) else { throw ModelError.missingTensor(name) }
            // Trailing 1s are equivalent (a bias may be stored [n, 1]).
            var dims = info.dims
            while dims.count > shape.count, dims.last == 1 { dims.removeLast() }
            guard dims == shape else { throw ModelError.wrongShape(tensor: name, expected: shape, found: info.dims) }
            guard info.type.isSupported else { throw GGUFError.unsupportedTensorType(info.type, tensor: name) }
            found.append(info)
        }
        let infos = found
        let buffers = infos.map { FloatBuffer(count: $0.elementCount, zeroed: false) }
        DispatchQueue.concurrentPerform(iterations: infos.count) { i in
            gguf.withTensorBytes(infos[i]) { raw in
                buffers[i].withUnsafeMutableBufferPointer { dst in
                    Dequantize.run(infos[i].type, src: raw, count: infos[i].elementCount, into: dst)
                }
            }
        }
        var byName: [String: FloatBuffer] = [:]
        for (i, (name, _)) in wanted.enumerated() { byName[name] = buffers[i] }
        tokenEmbd = byName["token_embd.weight"]!
        outputNorm = byName["output_norm.weight"]!
        output = tied ? tokenEmbd : byName["output.weight"]!
        layers = (0 ..< c.blockCount).map { i in
            let b = "blk.\(i)."
            return LayerWeights(
                attnNorm: byName[b + "attn_norm.weight"]!, attnQ: byName[b + "attn_q.weight"]!,
                attnK: byName[b + "attn_k.weight"]!, attnV: byName[b + "attn_v.weight"]!,
                attnQBias: byName[b + "attn_q.bias"], attnKBias: byName[b + "attn_k.bias"],
                attnVBias: byName[b + "attn_v.bias"], attnOutput: byName[b + "attn_output.weight"]!,
                ffnNorm: byName[b + "ffn_norm.weight"]!, ffnGate: byName[b + "ffn_gate.weight"]!,
                ffnUp: byName[b + "ffn_up.weight"]!, ffnDown: byName[b + "ffn_down.weight"]!)
        }
    }
}

/// One block's weight matrices repacked for the `simd` backend (see `PackedMatrix`).
public final class PackedLayer: Sendable {
    public let attnQ, attnK, attnV, attnOutput: PackedMatrix
    public let ffnGate, ffnUp, ffnDown: PackedMatrix

    init(_ l: LayerWeights, _ c: ModelConfig) {
        let e = c.embeddingLength
        attnQ = PackedMatrix(l.attnQ, rows: c.qDim, cols: e)
        attnK = PackedMatrix(l.attnK, rows: c.kvDim, cols: e)
        attnV = PackedMatrix(l.attnV, rows: c.kvDim, cols: e)
        attnOutput = PackedMatrix(l.attnOutput, rows: e, cols: c.qDim)
        ffnGate = PackedMatrix(l.ffnGate, rows: c.feedForwardLength, cols: e)
        ffnUp = PackedMatrix(l.ffnUp, rows: c.feedForwardLength, cols: e)
        ffnDown = PackedMatrix(l.ffnDown, rows: e, cols: c.feedForwardLength)
    }

    var bytes: Int { [attnQ, attnK, attnV, attnOutput, ffnGate, ffnUp, ffnDown].reduce(0) { $0 + $1.bytes } }
}

/// Every matrix of a model repacked for the `simd` backend: a second copy of the projection
/// weights and the LM head, made once per model when the first `simd` context is created.
public final class PackedWeights: Sendable {
    public let layers: [PackedLayer]
    public let output: PackedMatrix

    init(_ w: ModelWeights, _ c: ModelConfig) {
        // Each matrix is packed by one thread; the matrices are spread over all cores.
        let n = c.blockCount
        nonisolated(unsafe) var layers = [PackedLayer?](repeating: nil, count: n)
        nonisolated(unsafe) var output: PackedMatrix?
        layers.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: n + 1) { i in
                if i == n { output = PackedMatrix(w.output, rows: c.vocabSize, cols: c.embeddingLength) }
                else { slots[i] = PackedLayer(w.layers[i], c) }
            }
        }
        self.layers = layers.map { $0! }
        self.output = output!
    }

    /// Bytes held by the packed copies.
    public var bytes: Int { layers.reduce(output.bytes) { $0 + $1.bytes } }

    /// Bytes the packed copies of a model would take (each matrix padded to whole panels).
    static func bytes(for c: ModelConfig) -> Int {
        func size(_ rows: Int, _ cols: Int) -> Int { PackedMatrix.bytes(rows: rows, cols: cols) }
        let e = c.embeddingLength, f = c.feedForwardLength
        let layer = size(c.qDim, e) + 2 * size(c.kvDim, e) + size(e, c.qDim) + 2 * size(f, e) + size(e, f)
        return c.blockCount * layer + size(c.vocabSize, e)
    }
}
