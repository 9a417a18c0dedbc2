import Foundation

/// The non-GEMM operations of a transformer block. Every op works in place or between
/// preallocated buffers; none allocates.
enum Ops {
    /// `y[i] = x[i] / sqrt(mean(x²) + eps) * w[i]` for each row. Sum of squares in Double.
    static func rmsNorm(x: Matrix, weight: FloatBuffer, eps: Float, y: Matrix) {
        precondition(x.rows == y.rows && x.cols == y.cols && weight.count == x.cols, "rmsNorm: shape mismatch")
        let n = x.cols
        let w = weight.base
        for r in 0 ..< x.rows {
            let xr = x.row(r), yr = y.row(r)
            var ss: Double = 0
            for i in 0 ..< n { let v = Double(xr[i]); ss += v * v }
            let scale = Float(1.0 / (ss / Double(n) + Double(eps)).squareRoot())
            for i in 0 ..< n { yr[i] = xr[i] * scale * w[i] }
        }
    }

    /// Adds a bias row to every row of `x`.
    static func addBias(x: Matrix, bias: FloatBuffer) {
        precondition(bias.count == x.cols, "addBias: shape mismatch")
        for r in 0 ..< x.rows {
            let xr = x.row(r)
            for i in 0 ..< x.cols { xr[i] += bias.base[i] }
        }
    }

    /// Rotary position embedding, in place, on `heads` heads of `headDim` in each row.
    /// `.normal` rotates adjacent pairs (2i, 2i+1), the order llama.cpp's `llama` tensors are stored
    /// in; `.neox` rotates (i, i + ropeDim/2). `table` holds cos and sin per position and pair.
    static func rope(x: Matrix, heads: Int, headDim: Int, positions: UnsafePointer<Int32>, table: RopeTable) {
        precondition(heads * headDim <= x.cols, "rope: \(heads) heads of \(headDim) exceed a row of \(x.cols)")
        let half = table.pairs
        for r in 0 ..< x.rows {
            let pos = Int(positions[r])
            precondition(pos >= 0 && pos < table.positions, "rope: position \(pos) outside the table")
            let cs = table.cos.base + pos * half, sn = table.sin.base + pos * half
            for h in 0 ..< heads {
                let v = x.row(r) + h * headDim
                switch table.style {
                case .normal:
                    for i in 0 ..< half {
                        let a = v[2 * i], b = v[2 * i + 1], c = cs[i], s = sn[i]
                        v[2 * i] = a * c - b * s
                        v[2 * i + 1] = a * s + b * c
                    }
                case .neox:
                    for i in 0 ..< half {
                        let a = v[i], b = v[i + half], c = cs[i], s = sn[i]
                        v[i] = a * c - b * s
                        v[i + half] = a * s + b * c
                    }
                }
            }
        }
    }

    /// The fused causal softmax over attention scores, in place with no temporary: scale, mask the
    /// positions after the query's own (row `r` sees `firstVisible + r` columns), subtract the row
    /// max, exponentiate (8 lanes at a time), sum, normalise. Masked entries become exactly 0.
    static func causalSoftmax(scores: Matrix, scale: Float, firstVisible: Int) {
        precondition(scale > 0, "causalSoftmax: scale must be positive")
        for r in 0 ..< scores.rows {
            let row = scores.row(r)
            let visible = min(firstVisible + r, scores.cols)
            if visible > 0 { SIMDMath.softmax(row, visible, scale: scale) }
            for j in visible ..< scores.cols { row[j] = 0 }
        }
    }

    /// SwiGLU: `gate = silu(gate) * up`, with `silu(x) = x / (1 + e^-x)`.
    static func swiglu(gate: Matrix, up: Matrix) {
        precondition(gate.rows == up.rows && gate.cols == up.cols, "swiglu: shape mismatch")
        let n = gate.cols
        for r in 0 ..< gate.rows {
            let g = gate.row(r), u = up.row(r)
            var i = 0
            while i + 8 <= n {
                let x = SIMDMath.load(g + i)
                SIMDMath.store(x / (1 + SIMDMath.exp(-x)) * SIMDMath.load(u + i), g + i)
                i += 8
            }
            while i < n { let x = g[i]; g[i] = x / (1 + SIMDMath.exp(-x)) * u[i]; i += 1 }
        }
    }

    /// Copies embedding rows for each token id.
    static func embed(tokens: UnsafePointer<Int32>, count: Int, table: WeightMatrix, into x: Matrix) {
        precondition(x.rows >= count && x.cols == table.cols, "embed: shape mismatch")
        for r in 0 ..< count {
            let id = Int(tokens[r])
            precondition(id >= 0 && id < table.rows, "embed: token id \(id) outside the vocabulary of \(table.rows)")
            table.dequantizeRows(id ..< id + 1, into: x.row(r))
        }
    }

    /// Copies `count` rows of `cols` floats between strided matrices.
    static func copyRows(from src: Matrix, rows: Range<Int>, to dst: Matrix, at dstRow: Int) {
        precondition(src.cols == dst.cols && dstRow + rows.count <= dst.rows, "copyRows: shape mismatch")
        for (i, r) in rows.enumerated() { dst.row(dstRow + i).update(from: src.row(r), count: src.cols) }
    }
}

/// How RoPE pairs dimensions.
public enum RopeStyle: String, Sendable {
    /// Adjacent pairs (llama.cpp's LLAMA_ROPE_TYPE_NORM; Llama, Mistral GGUFs).
    case normal
    /// Halves (LLAMA_ROPE_TYPE_NEOX; Qwen2, GPT-NeoX).
    case neox
}

/// cos and sin of `pos · base^(-2i/ropeDim)` for every position and pair, computed once in Double.
final class RopeTable: @unchecked Sendable {
    let positions: Int
    let pairs: Int
    let style: RopeStyle
    let cos: FloatBuffer
    let sin: FloatBuffer

    init(positions: Int, ropeDim: Int, base: Double, style: RopeStyle) {
        self.positions = positions
        pairs = ropeDim / 2
        self.style = style
        cos = FloatBuffer(count: positions * pairs, zeroed: false)
        sin = FloatBuffer(count: positions * pairs, zeroed: false)
        for i in 0 ..< pairs {
            let freq = Foundation.pow(base, -2.0 * Double(i) / Double(ropeDim))
            for p in 0 ..< positions {
                let theta = Double(p) * freq
                cos.base[p * pairs + i] = Float(Foundation.cos(theta))
                sin.base[p * pairs + i] = Float(Foundation.sin(theta))
            }
        }
    }
}
