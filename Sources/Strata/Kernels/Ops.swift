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
    /// With a `window`, row `r` also masks the columns before `firstVisible + r - window`.
    static func causalSoftmax(scores: Matrix, scale: Float, firstVisible: Int, window: Int? = nil) {
        precondition(scale > 0, "causalSoftmax: scale must be positive")
        for r in 0 ..< scores.rows {
            let row = scores.row(r)
            let visible = min(firstVisible + r, scores.cols)
            let first = window.map { max(0, min(visible, firstVisible + r - $0)) } ?? 0
            for j in 0 ..< first { row[j] = 0 }
            if visible > first { SIMDMath.softmax(row + first, visible - first, scale: scale) }
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

    /// GeGLU: `gate = gelu(gate) * up`, with the tanh approximation
    /// `gelu(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))` computed as llama.cpp computes it
    /// (the reference Strata is checked against): read from a table indexed by the input rounded to
    /// half precision, holding half-precision values; 0 below -10 and x above 10. (Against the
    /// exact function this moves Gemma 3's logits by up to 7e-3.)
    static func geglu(gate: Matrix, up: Matrix) {
        precondition(gate.rows == up.rows && gate.cols == up.cols, "geglu: shape mismatch")
        let table = geluTable.base
        for r in 0 ..< gate.rows {
            let g = gate.row(r), u = up.row(r)
            for i in 0 ..< gate.cols {
                let x = g[i]
                let y = x <= -10 ? 0 : x >= 10 ? x : table[Int(Float16(x).bitPattern)]
                g[i] = y * u[i]
            }
        }
    }

    /// GELU (tanh) of every half-precision value, rounded to half precision.
    static let geluTable: FloatBuffer = {
        let t = FloatBuffer(count: 1 << 16, zeroed: false)
        for bits in 0 ..< (1 << 16) {
            let x = Float(Float16(bitPattern: UInt16(bits)))
            t.base[bits] = Float(Float16(0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * x * (1 + 0.044715 * x * x)))))
        }
        return t
    }()

    /// RMS norm of each `width`-wide head of every row, in place, with one weight vector for all
    /// heads (QK-norm).
    static func headNorm(x: Matrix, heads: Int, width: Int, weight: FloatBuffer, eps: Float) {
        precondition(heads * width <= x.cols && weight.count == width, "headNorm: shape mismatch")
        for r in 0 ..< x.rows {
            let head = Matrix(base: x.row(r), rows: heads, cols: width, stride: width)
            rmsNorm(x: head, weight: weight, eps: eps, y: head)
        }
    }

    /// `into += rmsNorm(x) · weight` row by row (a post-norm added to the residual).
    static func rmsNormAdd(x: Matrix, weight: FloatBuffer, eps: Float, into y: Matrix) {
        precondition(x.rows == y.rows && x.cols == y.cols && weight.count == x.cols, "rmsNormAdd: shape mismatch")
        let n = x.cols, w = weight.base
        for r in 0 ..< x.rows {
            let xr = x.row(r), yr = y.row(r)
            var ss: Double = 0
            for i in 0 ..< n { let v = Double(xr[i]); ss += v * v }
            let scale = Float(1.0 / (ss / Double(n) + Double(eps)).squareRoot())
            for i in 0 ..< n { yr[i] += xr[i] * scale * w[i] }
        }
    }

    /// Multiplies every element of the first `count` rows by `s`.
    static func scale(_ x: Matrix, rows count: Int, by s: Float) {
        for r in 0 ..< count { let row = x.row(r); for i in 0 ..< x.cols { row[i] *= s } }
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

/// cos and sin of `θ = pos · scale · base^(-2i/ropeDim) / factor[i]` for every position and
/// pair (`factor`: Llama 3's `rope_freqs`, else 1), computed as llama.cpp's CPU backend computes
/// them, in float32: `base^(-2/ropeDim)` once, θ for pair i by multiplying pair i-1's by it, then
/// `cos`/`sin`. (Over a thousand positions this differs from a double-precision θ by up to ~1e-4
/// rad, which moved Gemma 3's logits by ~1e-3 against the reference.)
final class RopeTable: @unchecked Sendable {
    let positions: Int
    let pairs: Int
    let style: RopeStyle
    let cos: FloatBuffer
    let sin: FloatBuffer

    init(positions: Int, ropeDim: Int, base: Double, style: RopeStyle, positionScale: Double = 1, factors: FloatBuffer? = nil) {
        self.positions = positions
        pairs = ropeDim / 2
        self.style = style
        precondition(factors.map { $0.count == ropeDim / 2 } ?? true, "rope factors: one per pair")
        cos = FloatBuffer(count: positions * pairs, zeroed: false)
        sin = FloatBuffer(count: positions * pairs, zeroed: false)
        let step = Foundation.powf(Float(base), -2 / Float(ropeDim)), scale = Float(positionScale)
        for p in 0 ..< positions {
            var theta = Float(p)
            for i in 0 ..< pairs {
                let t = scale * (theta / (factors?.base[i] ?? 1))
                cos.base[p * pairs + i] = Foundation.cosf(t)
                sin.base[p * pairs + i] = Foundation.sinf(t)
                theta *= step
            }
        }
    }
}
