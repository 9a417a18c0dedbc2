/// Hyperparameters of a decoder model, read from GGUF metadata (`{arch}.*` keys). What an
/// architecture does with them is its plan (`Architectures/`).
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var blockCount: Int
    public var embeddingLength: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var headCountKV: Int
    public var headDim: Int
    public var contextLength: Int
    public var vocabSize: Int
    public var rmsEpsilon: Float
    public var ropeBase: Double
    public var ropeDim: Int
    /// Positions are multiplied by this before RoPE (1 / `rope.scaling.factor` for linear scaling).
    public var ropePositionScale: Double = 1

    /// Width of all query heads together.
    public var qDim: Int { headCount * headDim }
    /// Width of all key (or value) heads together.
    public var kvDim: Int { headCountKV * headDim }
    /// Query heads served by each key/value head.
    public var groupSize: Int { headCount / headCountKV }

    /// Reads and validates the hyperparameters. `vocabSize` comes from the embedding tensor.
    public init(gguf: GGUFFile) throws {
        let archName = try gguf.string("general.architecture")
        architecture = try Architecture.named(archName)
        let p = archName + "."
        func positive(_ key: String, default d: Int? = nil) throws -> Int {
            let k = p + key
            let v: Int
            if gguf.metadata[k] == nil, let d { v = d } else { v = try gguf.int(k) }
            guard v > 0, v <= 1 << 24 else {
                throw ModelError.invalidHyperparameter(key: k, value: String(v), reason: "must be between 1 and 16777216")
            }
            return v
        }
        blockCount = try positive("block_count")
        embeddingLength = try positive("embedding_length")
        feedForwardLength = try positive("feed_forward_length")
        headCount = try positive("attention.head_count")
        headCountKV = try positive("attention.head_count_kv", default: headCount)
        contextLength = try positive("context_length")
        if gguf.metadata[p + "attention.key_length"] == nil {
            guard embeddingLength % headCount == 0 else {
                throw ModelError.invalidHyperparameter(key: p + "attention.head_count", value: String(headCount),
                                                       reason: "does not divide embedding_length \(embeddingLength)")
            }
        }
        headDim = try positive("attention.key_length", default: embeddingLength / headCount)
        let valueDim = try positive("attention.value_length", default: headDim)
        guard valueDim == headDim else {
            throw ModelError.invalidHyperparameter(key: p + "attention.value_length", value: String(valueDim),
                                                   reason: "value heads of a size other than the key heads (\(headDim)) are not implemented")
        }
        guard headCount % headCountKV == 0 else {
            throw ModelError.invalidHyperparameter(key: p + "attention.head_count_kv", value: String(headCountKV),
                                                   reason: "does not divide head_count \(headCount)")
        }
        ropeDim = try positive("rope.dimension_count", default: headDim)
        guard ropeDim <= headDim, ropeDim % 2 == 0 else {
            throw ModelError.invalidHyperparameter(key: p + "rope.dimension_count", value: String(ropeDim),
                                                   reason: "must be even and at most the head size \(headDim)")
        }
        let eps = gguf.metadata[p + "attention.layer_norm_rms_epsilon"] == nil
            ? 1e-5 : try gguf.double(p + "attention.layer_norm_rms_epsilon")
        guard eps > 0, eps < 1 else {
            throw ModelError.invalidHyperparameter(key: p + "attention.layer_norm_rms_epsilon", value: String(eps), reason: "must be in (0, 1)")
        }
        rmsEpsilon = Float(eps)
        ropeBase = gguf.metadata[p + "rope.freq_base"] == nil ? 10000 : try gguf.double(p + "rope.freq_base")
        guard ropeBase > 1, ropeBase.isFinite else {
            throw ModelError.invalidHyperparameter(key: p + "rope.freq_base", value: String(ropeBase), reason: "must be a finite number above 1")
        }
        if let scaling = gguf.metadata[p + "rope.scaling.type"]?.stringValue, scaling != "none" {
            guard scaling == "linear" else {
                throw ModelError.invalidHyperparameter(key: p + "rope.scaling.type", value: scaling,
                                                       reason: "Strata implements RoPE scaling 'none' and 'linear' only")
            }
            let factor = try gguf.double(p + "rope.scaling.factor")
            guard factor >= 1, factor.isFinite else {
                throw ModelError.invalidHyperparameter(key: p + "rope.scaling.factor", value: String(factor), reason: "must be a finite number of at least 1")
            }
            ropePositionScale = 1 / factor
        }
        guard let embd = gguf.tensorInfo("token_embd.weight") else { throw ModelError.missingTensor("token_embd.weight") }
        guard embd.dims.count == 2, embd.dims[0] == embeddingLength else {
            throw ModelError.wrongShape(tensor: "token_embd.weight", expected: [embeddingLength, -1], found: embd.dims)
        }
        vocabSize = embd.dims[1]
    }
}
