/// Records attention probabilities while the executor runs: set it as a context's
/// `attentionCapture`, evaluate a step, read `probabilities`. For every chosen layer, every query
/// head and every row of the step, the softmax row the attention kernel computed — the very values
/// it then weighs the cached values with, not a second computation. When no capture is set the
/// kernels skip it with one branch per (row, head).
public final class AttentionCapture: @unchecked Sendable {
    /// The layers captured, ascending.
    public let layers: [Int]
    public let heads: Int
    /// Rows of a step (batch rows) and key positions per row.
    public let rows: Int
    public let positions: Int
    private let slot: [Int: Int]   // layer → index in `layers`
    let buffer: FloatBuffer        // [layer index][head][row][position], zero where nothing was written

    /// Room for `rows` rows of a step against `positions` key positions, for `layers` (a model's
    /// layer indices) and `heads` query heads.
    public init(layers: [Int], heads: Int, rows: Int, positions: Int) {
        self.layers = Array(Set(layers)).sorted()
        self.heads = heads
        self.rows = rows
        self.positions = positions
        slot = Dictionary(uniqueKeysWithValues: self.layers.enumerated().map { ($0.element, $0.offset) })
        buffer = FloatBuffer(count: self.layers.count * heads * rows * positions)
    }

    /// Clears what earlier steps wrote.
    public func reset() { buffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }

    /// Where row `row` of head 0 in `layer` goes (nil when the layer is not captured); head `h` is
    /// `headStride` floats further, key position `s` at `+ s`.
    @inline(__always)
    func base(layer: Int, row: Int) -> UnsafeMutablePointer<Float>? {
        guard let i = slot[layer], row < rows else { return nil }
        return buffer.base + (i * heads * rows + row) * positions
    }

    var headStride: Int { rows * positions }

    /// `[head][row][position]` probabilities of one captured layer.
    public func probabilities(layer: Int) -> [[[Float]]] {
        guard let i = slot[layer] else { return [] }
        return (0 ..< heads).map { h in
            (0 ..< rows).map { r in buffer.array((((i * heads + h) * rows) + r) * positions ..< (((i * heads + h) * rows) + r + 1) * positions) }
        }
    }
}

/// The logit lens: after every block, the residual stream of the step's logits row (the last row
/// of the first sequence that asks for logits) read through the final norm and the LM head, by the
/// executor's own ops. Set it as a context's `logitLens` before a step; `logits(afterLayer:)` then
/// holds what the model would predict if it stopped after that block. The last block's row is the
/// step's real logits.
public final class LogitLens: @unchecked Sendable {
    public let layers: Int
    public let vocabularySize: Int
    let buffer: FloatBuffer   // [layer][vocab]
    let normed: FloatBuffer   // [embd]

    public init(config c: ModelConfig) {
        layers = c.blockCount
        vocabularySize = c.vocabSize
        buffer = FloatBuffer(count: c.blockCount * c.vocabSize)
        normed = FloatBuffer(count: c.embeddingLength)
    }

    /// The logits read after block `layer` (0-based).
    public func logits(afterLayer layer: Int) -> [Float] {
        precondition(layer >= 0 && layer < layers)
        return buffer.array(layer * vocabularySize ..< (layer + 1) * vocabularySize)
    }
}
