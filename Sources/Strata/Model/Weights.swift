import Dispatch

/// One transformer block's weights, named after the GGUF tensors (`blk.N.attn_q.weight` → `attnQ`).
/// Matrices are held as ggml stores them, one row per output, in the file's type (`--weights
/// native`) or as float32 (`--weights f32`); norms and biases are always float32.
/// A class, so that the executor's per-op access costs one reference, not twelve.
public final class LayerWeights: Sendable {
    public let attnNorm: FloatBuffer     // [embd]
    public let attnQ: WeightMatrix        // [qDim, embd]
    public let attnK: WeightMatrix        // [kvDim, embd]
    public let attnV: WeightMatrix        // [kvDim, embd]
    public let attnQBias: FloatBuffer?   // [qDim]
    public let attnKBias: FloatBuffer?   // [kvDim]
    public let attnVBias: FloatBuffer?   // [kvDim]
    public let attnOutput: WeightMatrix   // [embd, qDim]
    public let ffnNorm: FloatBuffer      // [embd]
    public let ffnGate: WeightMatrix      // [ff, embd]
    public let ffnUp: WeightMatrix        // [ff, embd]
    public let ffnDown: WeightMatrix      // [embd, ff]

    init(attnNorm: FloatBuffer, attnQ: WeightMatrix, attnK: WeightMatrix, attnV: WeightMatrix, attnQBias: FloatBuffer?,
         attnKBias: FloatBuffer?, attnVBias: FloatBuffer?, attnOutput: WeightMatrix, ffnNorm: FloatBuffer,
         ffnGate: WeightMatrix, ffnUp: WeightMatrix, ffnDown: WeightMatrix) {
        self.attnNorm = attnNorm; self.attnQ = attnQ; self.attnK = attnK; self.attnV = attnV
        self.attnQBias = attnQBias; self.attnKBias = attnKBias; self.attnVBias = attnVBias
        self.attnOutput = attnOutput; self.ffnNorm = ffnNorm; self.ffnGate = ffnGate; self.ffnUp = ffnUp; self.ffnDown = ffnDown
    }
}

/// All weights of a model.
public struct ModelWeights: Sendable {
    public let tokenEmbd: WeightMatrix   // [vocab, embd]
    public let outputNorm: FloatBuffer   // [embd]
    /// The LM head; the same buffer as `tokenEmbd` when the model ties them (no `output.weight`).
    public let output: WeightMatrix      // [vocab, embd]
    public let layers: [LayerWeights]
    public var tiedEmbeddings: Bool { output === tokenEmbd }

    public let mode: WeightsMode

    /// Every matrix, tied weights once.
    public var matrices: [WeightMatrix] {
        var all = [tokenEmbd]
        if !tiedEmbeddings { all.append(output) }
        for l in layers { all += [l.attnQ, l.attnK, l.attnV, l.attnOutput, l.ffnGate, l.ffnUp, l.ffnDown] }
        return all
    }

    /// Every float32 vector (norms, biases).
    public var vectors: [FloatBuffer] {
        var all = [outputNorm]
        for l in layers { all += [l.attnNorm, l.ffnNorm] + [l.attnQBias, l.attnKBias, l.attnVBias].compactMap { $0 } }
        return all
    }

    /// Total parameters (tied weights counted once).
    public var parameterCount: Int {
        matrices.reduce(0) { $0 + $1.rows * $1.cols } + vectors.reduce(0) { $0 + $1.count }
    }

    /// Bytes the weights take as held: matrices in their types (or float32), vectors as float32.
    public var bytes: Int {
        matrices.reduce(0) { $0 + $1.bytes } + vectors.reduce(0) { $0 + $1.count * 4 }
    }

    /// Reads every tensor the config calls for and checks its shape and type. Vectors are
    /// dequantized; matrices stay in the mapped file (`.native`) or are dequantized too (`.f32`),
    /// in parallel.
    init(gguf: GGUFFile, config c: ModelConfig, mode: WeightsMode = .native) throws {
        self.mode = mode
        // Each block has at least nine tensors: a block count the file cannot hold fails here, not
        // after a list of millions of tensor names (a corrupt count of 11 million did that).
        guard c.blockCount <= gguf.tensors.count / 9 else {
            throw ModelError.missingTensor("blk.\(c.blockCount - 1).attn_norm.weight (block_count is \(c.blockCount), but the file holds only \(gguf.tensors.count) tensors)")
        }
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
            guard info.type.isSupported, WeightMatrix.nativeSupported(info.type) else {
                throw GGUFError.unsupportedTensorType(info.type, tensor: name)
            }
            found.append(info)
        }
        let infos = found
        // A tensor is dequantized at load if it is a vector, or a matrix in f32 mode.
        let dequantized = wanted.map { mode == .f32 || $0.1.count == 1 }
        let buffers = infos.indices.map { dequantized[$0] ? FloatBuffer(count: infos[$0].elementCount, zeroed: false) : nil }
        DispatchQueue.concurrentPerform(iterations: infos.count) { i in
            guard let buffer = buffers[i] else { return }
            gguf.withTensorBytes(infos[i]) { raw in
                buffer.withUnsafeMutableBufferPointer { dst in
                    Dequantize.run(infos[i].type, src: raw, count: infos[i].elementCount, into: dst)
                }
            }
        }
        var vectors: [String: FloatBuffer] = [:]
        var matrices: [String: WeightMatrix] = [:]
        for (i, (name, shape)) in wanted.enumerated() {
            if shape.count == 1 { vectors[name] = buffers[i]! ; continue }
            let rows = shape[1], cols = shape[0]
            matrices[name] = buffers[i].map { WeightMatrix(name: name, floats: $0, rows: rows, cols: cols) }
                ?? WeightMatrix(name: name, info: infos[i], rows: rows, cols: cols, file: gguf)
        }
        tokenEmbd = matrices["token_embd.weight"]!
        outputNorm = vectors["output_norm.weight"]!
        output = tied ? tokenEmbd : matrices["output.weight"]!
        layers = (0 ..< c.blockCount).map { i in
            let b = "blk.\(i)."
            return LayerWeights(
                attnNorm: vectors[b + "attn_norm.weight"]!, attnQ: matrices[b + "attn_q.weight"]!,
                attnK: matrices[b + "attn_k.weight"]!, attnV: matrices[b + "attn_v.weight"]!,
                attnQBias: vectors[b + "attn_q.bias"], attnKBias: vectors[b + "attn_k.bias"],
                attnVBias: vectors[b + "attn_v.bias"], attnOutput: matrices[b + "attn_output.weight"]!,
                ffnNorm: vectors[b + "ffn_norm.weight"]!, ffnGate: matrices[b + "ffn_gate.weight"]!,
                ffnUp: matrices[b + "ffn_up.weight"]!, ffnDown: matrices[b + "ffn_down.weight"]!)
        }
    }
}

/// One block's weight matrices repacked for the `simd` backend (see `PackedMatrix`).
public final class PackedLayer: Sendable {
    public let attnQ, attnK, attnV, attnOutput: PackedMatrix
    public let ffnGate, ffnUp, ffnDown: PackedMatrix

    init(_ l: LayerWeights, _ a: ActivationMode) {
        attnQ = PackedMatrix(l.attnQ, activations: a)
        attnK = PackedMatrix(l.attnK, activations: a)
        attnV = PackedMatrix(l.attnV, activations: a)
        attnOutput = PackedMatrix(l.attnOutput, activations: a)
        ffnGate = PackedMatrix(l.ffnGate, activations: a)
        ffnUp = PackedMatrix(l.ffnUp, activations: a)
        ffnDown = PackedMatrix(l.ffnDown, activations: a)
    }

    var bytes: Int { [attnQ, attnK, attnV, attnOutput, ffnGate, ffnUp, ffnDown].reduce(0) { $0 + $1.bytes } }
}

/// Every matrix of a model repacked for the `simd` backend, made once per model when the first
/// `simd` context is created: float32 panels in f32 mode (a second copy of the weights), or
/// panels of the file's blocks in native mode, after which the mapped pages are released (this
/// copy is then the only one resident).
public final class PackedWeights: Sendable {
    public let layers: [PackedLayer]
    public let output: PackedMatrix

    public let activations: ActivationMode

    init(_ w: ModelWeights, _ c: ModelConfig, activations: ActivationMode) {
        self.activations = activations
        // Each matrix is packed by one thread; the matrices are spread over all cores.
        let n = c.blockCount
        nonisolated(unsafe) var layers = [PackedLayer?](repeating: nil, count: n)
        nonisolated(unsafe) var output: PackedMatrix?
        layers.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: n + 1) { i in
                // Each matrix's mapped pages are released as soon as its panels exist, so the
                // file and its panels are never resident together (peak ≈ panels + one layer).
                if i == n {
                    output = PackedMatrix(w.output, activations: activations)
                    w.output.releaseMappedPages()
                } else {
                    let l = w.layers[i]
                    slots[i] = PackedLayer(l, activations)
                    for m in [l.attnQ, l.attnK, l.attnV, l.attnOutput, l.ffnGate, l.ffnUp, l.ffnDown] { m.releaseMappedPages() }
                }
            }
        }
        self.layers = layers.map { $0! }
        self.output = output!
        maxCols = w.matrices.reduce(0) { max($0, $1.cols) }
        // The tied embedding still serves token lookups: those rows fault back in one at a time.
    }

    /// The widest matrix's input count: a quantized panel unpacks into `width × maxCols` floats.
    public let maxCols: Int

    /// Bytes held by the packed copies.
    public var bytes: Int { layers.reduce(output.bytes) { $0 + $1.bytes } }

    /// Bytes the packed copies of a model's matrices would take (each padded to whole panels).
    static func bytes(for w: ModelWeights, activations: ActivationMode) -> Int {
        w.matrices.reduce(0) { $0 + PackedMatrix.bytes(for: $1, activations: activations) }
    }
}
