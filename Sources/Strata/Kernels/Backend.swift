import COpenBLAS
import Foundation

/// Which kernel every matrix multiply runs on. Chosen at run time so that both can be compared on
/// the same model and input.
public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    /// OpenBLAS `cblas_sgemm` (and `cblas_sgemv` for single rows, where sgemm is slow).
    case blas
    /// Plain Swift loops: no BLAS, no tiling, no SIMD intrinsics. The baseline.
    case naive
    /// Strata's own kernels: weights repacked once into panels, a register-blocked SIMD
    /// micro-kernel, Strata's spinning thread pool, fused attention for every row. The default.
    case simd

    public var description: String { rawValue }
}

/// OpenBLAS thread control; the count is set once per process (OpenBLAS's pool is global).
public enum BLASThreads {
    /// The count last set, under a lock: contexts made on several threads at once take turns
    /// (ThreadSanitizer caught two test contexts racing here). A pthread lock (`NSLock`), which
    /// ThreadSanitizer can see, unlike `Mutex`'s futex on Linux.
    nonisolated(unsafe) private static var current = 0
    private static let lock = NSLock()

    /// Sets OpenBLAS's thread count if it differs from the last one set.
    public static func set(_ n: Int) {
        precondition(n >= 1)
        lock.lock()
        defer { lock.unlock() }
        if current != n {
            openblas_set_num_threads(Int32(n))
            current = n
        }
    }

    public static var configured: Int { Int(openblas_get_num_threads()) }
}

enum GEMM {
    /// `C = A · Bᵀ (+ C)` with `A: [m × k]`, `B: [n × k]`, `C: [m × n]` (weights stored as ggml
    /// does: one row per output), or with `transB == false`, `C = A · B (+ C)` with `B: [k × n]`.
    /// `accumulate` adds into `C` (beta = 1), which fuses a residual add into the projection.
    static func run(_ backend: Backend, a: Matrix, b: Matrix, c: Matrix, transB: Bool, accumulate: Bool = false) {
        let m = a.rows, k = a.cols
        let n = transB ? b.rows : b.cols
        precondition(c.rows == m && c.cols == n, "GEMM: C is [\(c.rows)×\(c.cols)], expected [\(m)×\(n)]")
        precondition((transB ? b.cols : b.rows) == k, "GEMM: inner dimensions differ (\(k) vs \(transB ? b.cols : b.rows))")
        if m == 0 || n == 0 { return }
        switch backend {
        case .blas: blas(m: m, n: n, k: k, a: a, b: b, c: c, transB: transB, accumulate: accumulate)
        case .naive: naive(m: m, n: n, k: k, a: a, b: b, c: c, transB: transB, accumulate: accumulate)
        case .simd:
            // Packs B on every call (allocates): for one-off products. The executor keeps its
            // weights packed (`PackedWeights`) and calls `PackedGEMM` directly.
            let packed = transB ? PackedMatrix(b) : PackedMatrix(kMajor: b)
            PackedGEMM.parallel(a: a, w: packed, c: c, accumulate: accumulate, threads: ThreadPool.shared.width)
        }
    }

    /// Floats of scratch the `blas` backend dequantizes a quantized weight's rows into (a chunk
    /// of rows at a time, then sgemm on the chunk).
    static let blasChunkFloats = 1 << 18

    /// Scratch floats `run(_:a:weight:…)` needs for weights of at most `cols` inputs.
    static func scratchFloats(_ backend: Backend, cols: Int) -> Int {
        switch backend {
        case .naive: cols
        case .blas: max(cols, blasChunkFloats)
        case .simd: 0
        }
    }

    /// `C = A · Wᵀ (+ C)` with a model weight in any type (blas and naive; simd packs its own):
    /// float32 weights as they are; quantized ones dequantized into `scratch` (`scratchFloats`
    /// floats) — one row at a time for naive, a chunk of rows for each sgemm call for blas.
    static func run(_ backend: Backend, a: Matrix, weight w: WeightMatrix, c: Matrix, accumulate: Bool,
                    scratch: UnsafeMutablePointer<Float>?, scratchFloats: Int) {
        if let b = w.floatMatrix {
            run(backend, a: a, b: b, c: c, transB: true, accumulate: accumulate)
            return
        }
        let m = a.rows, k = a.cols, n = w.rows
        precondition(k == w.cols && c.rows == m && c.cols == n, "GEMM: shapes differ")
        if k == 0 {   // an empty sum
            if !accumulate { for i in 0 ..< m { for j in 0 ..< n { c.row(i)[j] = 0 } } }
            return
        }
        precondition(scratch != nil && scratchFloats >= k, "GEMM: a quantized weight needs scratch")
        guard let scratch, m > 0 else { return }
        let chunk = backend == .naive ? 1 : max(1, min(n, scratchFloats / k))
        var j0 = 0
        while j0 < n {
            let j1 = min(n, j0 + chunk)
            w.dequantizeRows(j0 ..< j1, into: scratch)
            let b = Matrix(base: scratch, rows: j1 - j0, cols: k, stride: k)
            let cj = Matrix(base: c.base + j0, rows: m, cols: j1 - j0, stride: c.stride)
            switch backend {
            case .blas: blas(m: m, n: j1 - j0, k: k, a: a, b: b, c: cj, transB: true, accumulate: accumulate)
            default: naive(m: m, n: j1 - j0, k: k, a: a, b: b, c: cj, transB: true, accumulate: accumulate)
            }
            j0 = j1
        }
    }

    /// Up to this many rows, one sgemv per row: OpenBLAS 0.3.21's sgemm reaches ~28 GFLOP/s at 4
    /// rows here, below the ~60 GB/s its sgemv streams the weights at (see BENCHMARKS.md).
    static let gemvRowLimit = 4

    private static func blas(m: Int, n: Int, k: Int, a: Matrix, b: Matrix, c: Matrix, transB: Bool, accumulate: Bool) {
        let beta: Float = accumulate ? 1 : 0
        if m <= gemvRowLimit {
            // Matrix-vector products stream the weights; sgemm at M = 1 is several times slower.
            for i in 0 ..< m {
                if transB {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, b.base, Int32(b.stride),
                                a.row(i), 1, beta, c.row(i), 1)
                } else {
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, b.base, Int32(b.stride),
                                a.row(i), 1, beta, c.row(i), 1)
                }
            }
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a.base, Int32(a.stride), b.base, Int32(b.stride),
                    beta, c.base, Int32(c.stride))
    }

    /// The textbook loops. `Bᵀ` case: one dot product per output; `B` case: i-k-j order so the
    /// inner loop runs along contiguous rows of B and C.
    private static func naive(m: Int, n: Int, k: Int, a: Matrix, b: Matrix, c: Matrix, transB: Bool, accumulate: Bool) {
        if transB {
            for i in 0 ..< m {
                let x = a.row(i), y = c.row(i)
                for j in 0 ..< n {
                    let w = b.row(j)
                    var sum: Float = 0
                    for p in 0 ..< k { sum += x[p] * w[p] }
                    y[j] = accumulate ? y[j] + sum : sum
                }
            }
        } else {
            for i in 0 ..< m {
                let x = a.row(i), y = c.row(i)
                if !accumulate { for j in 0 ..< n { y[j] = 0 } }
                for p in 0 ..< k {
                    let xp = x[p], w = b.row(p)
                    for j in 0 ..< n { y[j] += xp * w[j] }
                }
            }
        }
    }
}
