import CQuant

/// The kernels behind small safe APIs on `FloatBuffer`s, for benchmarks and experiments. Shapes
/// are checked (`precondition`) against the buffers before any pointer is touched.
public enum Kernels {
    /// `c[m, n] = a[m, k] · bᵀ` with `b: [n, k]` (weights as ggml stores them), on `backend`.
    public static func matmul(_ backend: Backend, a: FloatBuffer, b: FloatBuffer, c: FloatBuffer, m: Int, n: Int, k: Int) {
        precondition(a.count >= m * k && b.count >= n * k && c.count >= m * n, "matmul: buffers too small for [\(m)×\(k)]·[\(n)×\(k)]ᵀ")
        GEMM.run(backend, a: a.matrix(rows: m, cols: k), b: b.matrix(rows: n, cols: k), c: c.matrix(rows: m, cols: n), transB: true)
    }

    /// `c[m, n] = a[m, k] · Wᵀ` on the `simd` kernel, with `W` packed once beforehand
    /// (`PackedMatrix(weight, rows: n, cols: k)`), on `threads` threads (nil: all of the pool).
    public static func matmul(a: FloatBuffer, packed w: PackedMatrix, c: FloatBuffer, m: Int, threads: Int? = nil) {
        precondition(a.count >= m * w.cols && c.count >= m * w.rows, "matmul: buffers too small for [\(m)×\(w.cols)]·[\(w.rows)×\(w.cols)]ᵀ")
        let n = max(1, min(threads ?? ThreadPool.shared.width, ThreadPool.shared.width))
        // Scratch only for quantized panels (float panels, as the microbenchmarks time them, need none).
        let scratch = w.scratchFloats > 0 ? FloatBuffer(count: n * w.scratchFloats, zeroed: false) : nil
        let blocks = w.isInteger
            ? UnsafeMutableRawPointer.allocate(byteCount: max(1, m * w.activationBlocks) * w.integerActivations.blockBytes, alignment: 64) : nil
        defer { blocks?.deallocate() }
        PackedGEMM.parallel(a: a.matrix(rows: m, cols: w.cols), w: w, c: c.matrix(rows: m, cols: w.rows), accumulate: false,
                            threads: n, scratch: scratch?.base, stride: w.scratchFloats, activationBlocks: blocks)
    }

    /// `c[m, n] = a[m, k] · Wᵀ` for a model weight of any type on `backend` (simd packs it first,
    /// which a model does once at load).
    public static func matmul(_ backend: Backend, a: FloatBuffer, weight w: WeightMatrix, c: FloatBuffer, m: Int, threads: Int? = nil,
                              activations: ActivationMode = .f32) {
        precondition(a.count >= m * w.cols && c.count >= m * w.rows, "matmul: buffers too small")
        if backend == .simd {
            matmul(a: a, packed: PackedMatrix(w, activations: activations), c: c, m: m, threads: threads)
            return
        }
        let floats = GEMM.scratchFloats(backend, cols: w.cols)
        let scratch = FloatBuffer(count: floats, zeroed: false)
        GEMM.run(backend, a: a.matrix(rows: m, cols: w.cols), weight: w, c: c.matrix(rows: m, cols: w.rows), accumulate: false,
                 scratch: scratch.base, scratchFloats: floats)
    }

    /// Unpacks panel `panel` of a packed matrix (float or quantized) into `width × cols` floats,
    /// `[cols][width]`: what the micro-kernel reads.
    public static func unpackPanel(_ w: PackedMatrix, panel: Int) -> [Float] {
        precondition(panel >= 0 && panel < w.panels && !w.isInteger)
        let nr = PackedMatrix.width
        if let q = w.quant {
            var out = [Float](repeating: 0, count: nr * w.cols)
            out.withUnsafeMutableBufferPointer {
                strata_qpanel_unpack(Int32(w.quantType!.rawValue), q + panel * w.panelBytes, Int32(w.cols), Int32(nr), $0.baseAddress!)
            }
            return out
        }
        return w.data.array(panel * nr * w.cols ..< (panel + 1) * nr * w.cols)
    }

    /// The micro-kernel's panel width on this build (32 with AVX-512, else 16).
    public static var panelWidth: Int { PackedMatrix.width }

    /// The fused causal softmax over `rows × cols` scores (row r sees `cols - rows + r + 1` keys).
    public static func causalSoftmax(_ scores: FloatBuffer, rows: Int, cols: Int, scale: Float) {
        precondition(scores.count >= rows * cols && rows <= cols)
        Ops.causalSoftmax(scores: scores.matrix(rows: rows, cols: cols), scale: scale, firstVisible: cols - rows + 1)
    }

    /// RMSNorm of `rows` rows of `weight.count` values.
    public static func rmsNorm(_ x: FloatBuffer, weight: FloatBuffer, into y: FloatBuffer, rows: Int, eps: Float = 1e-5) {
        let n = weight.count
        precondition(x.count >= rows * n && y.count >= rows * n)
        Ops.rmsNorm(x: x.matrix(rows: rows, cols: n), weight: weight, eps: eps, y: y.matrix(rows: rows, cols: n))
    }

    /// RoPE in place on `rows` rows of `heads × headDim`, row r at position r.
    public static func rope(_ x: FloatBuffer, rows: Int, heads: Int, headDim: Int, base: Double = 10000, style: RopeStyle = .normal) {
        precondition(x.count >= rows * heads * headDim)
        let table = RopeTable(positions: rows, ropeDim: headDim, base: base, style: style)
        let positions = (0 ..< rows).map(Int32.init)
        Ops.rope(x: x.matrix(rows: rows, cols: heads * headDim), heads: heads, headDim: headDim, positions: positions, table: table)
    }

    /// SwiGLU in place: `gate = silu(gate) · up`.
    public static func swiglu(gate: FloatBuffer, up: FloatBuffer, rows: Int, cols: Int) {
        precondition(gate.count >= rows * cols && up.count >= rows * cols)
        Ops.swiglu(gate: gate.matrix(rows: rows, cols: cols), up: up.matrix(rows: rows, cols: cols))
    }

    /// Dequantizes raw ggml blocks.
    public static func dequantize(_ type: GGMLType, bytes: [UInt8], count: Int, into out: FloatBuffer) {
        precondition(type.isSupported && out.count >= count && bytes.count >= count / type.blockLayout.elements * type.blockLayout.bytes)
        bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { Dequantize.run(type, src: src, count: count, into: $0) } }
    }
}
