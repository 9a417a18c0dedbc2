// The `simd` backend's matrix multiply: weights repacked once into column panels, and a
// register-blocked micro-kernel that keeps a block of C in vector registers while it streams a
// panel. The layout and loop order follow the BLIS/GotoBLAS micro-kernel design (one packed
// operand, broadcasts of the other); everything here is Strata's own Swift.

import CPrefetch
import CQuant
import Foundation

#if STRATA_AVX512
/// One vector register: 16 floats with AVX-512.
typealias PVec = SIMD16<Float>
#else
/// One vector register: 8 floats with AVX2 (two NEON registers on arm64).
typealias PVec = SIMD8<Float>
#endif

/// A weight matrix `W: [n × k]` (one row per output, as ggml stores it) repacked for the `simd`
/// kernel: output rows grouped into panels of `width` (two vector registers), each panel stored
/// k-major, `panel[p][j] = W[panelStart + j][p]`, so that one step of the kernel's inner loop reads
/// `width` consecutive floats. The last panel is padded with zeros.
///
/// A quantized matrix keeps its blocks instead: each panel's rows interleaved block by block
/// (CSystem/CQuant), the same bytes as the file's blocks (a little more for some K-quants). The
/// kernel unpacks one panel at a time into the float layout above, in a per-thread buffer that
/// stays in cache, and runs the same micro-kernel on it: every value unpacks to exactly the float
/// `Dequantize` gives, so the result is bit for bit the one of the float32 panels.
public final class PackedMatrix: @unchecked Sendable {
    /// Outputs per panel: two vector registers.
    static let width = 2 * PVec.scalarCount
    /// Outputs (`n`) and inputs (`k`).
    public let rows: Int
    public let cols: Int
    let panels: Int
    /// Float panels, or nil for a quantized matrix.
    let data: FloatBuffer!
    /// The type of a quantized matrix's blocks, its panels and the bytes of one panel.
    let quantType: GGMLType?
    let quant: UnsafeMutableRawPointer?
    let panelBytes: Int

    /// Whether the panels are integer panels (Q4_0, Q4_1, Q8_0: `strata_igemm`, activations
    /// quantized to 8 bits; `strata_igemm24`, to 24) rather than panels unpacked to floats.
    public var isInteger: Bool { integerActivations.isInteger }
    /// How the activations are quantized for integer panels (`.q8` or `.q24`; `.f32` otherwise).
    public let integerActivations: ActivationMode

    /// Packs a model's weight matrix: float panels from float32 values; quantized panels,
    /// unpacked to floats per panel, from blocks; with `activations: .q8` or `.q24`, integer
    /// panels from Q4_0/Q4_1/Q8_0 blocks.
    public convenience init(_ w: WeightMatrix, activations: ActivationMode = .f32) {
        if let m = w.floatMatrix { self.init(m) } else {
            self.init(quantized: w, integer: activations.isInteger && Self.integerSupported(w) ? activations : .f32)
        }
    }

    private init(quantized w: WeightMatrix, integer: ActivationMode) {
        rows = w.rows
        cols = w.cols
        let t = Int32(w.type.rawValue)
        integerActivations = integer
        let isInteger = integer.isInteger
        let nr = isInteger ? Int(STRATA_IPANEL) : Self.width
        panels = (w.rows + nr - 1) / nr
        data = nil
        quantType = w.type
        panelBytes = isInteger ? strata_ipanel_bytes(t, Int32(w.cols)) : Self.panelBytes(type: w.type, cols: w.cols)
        let total = max(panels * panelBytes, 1)
        quant = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 64)
        for pn in 0 ..< panels {
            let src = w.raw! + pn * nr * w.rowBytes, valid = Int32(min(nr, rows - pn * nr))
            if isInteger {
                strata_ipanel_pack(t, src, w.rowBytes, valid, Int32(cols), quant! + pn * panelBytes)
            } else {
                strata_qpanel_pack(t, src, w.rowBytes, valid, Int32(cols), Int32(nr), quant! + pn * panelBytes)
            }
        }
    }

    static func integerSupported(_ w: WeightMatrix) -> Bool {
        !w.isFloat && strata_ipanel_supported(Int32(w.type.rawValue)) != 0 && w.cols % 32 == 0
    }

    deinit { quant?.deallocate() }

    static func panelBytes(type: GGMLType, cols: Int) -> Int {
        let t = Int32(type.rawValue)
        return cols / Int(strata_qpanel_block_values(t)) * Int(strata_qpanel_block_bytes(t, Int32(width)))
    }

    /// Whether the panels hold quantized blocks (unpacked per panel into a scratch buffer).
    public var isQuantized: Bool { quant != nil }

    /// Floats of scratch one thread needs to unpack a panel of this matrix.
    var scratchFloats: Int { isQuantized && !isInteger ? Self.width * cols : 0 }

    /// Quantized activation blocks a row needs (integer panels).
    var activationBlocks: Int { isInteger ? cols / 32 : 0 }

    init(_ w: Matrix) {
        rows = w.rows
        cols = w.cols
        quantType = nil; quant = nil; panelBytes = 0; integerActivations = .f32
        panels = (w.rows + Self.width - 1) / Self.width
        data = FloatBuffer(count: panels * Self.width * w.cols)
        let nr = Self.width, k = w.cols
        for pn in 0 ..< panels {
            let dst = data.base + pn * k * nr
            for j in 0 ..< min(nr, rows - pn * nr) {
                let src = w.row(pn * nr + j)
                for p in 0 ..< k { dst[p * nr + j] = src[p] }
            }
        }
    }

    /// Packs `B: [k × n]` (inputs along rows), so that the kernel computes `A · B`.
    init(kMajor b: Matrix) {
        rows = b.cols
        cols = b.rows
        quantType = nil; quant = nil; panelBytes = 0; integerActivations = .f32
        panels = (b.cols + Self.width - 1) / Self.width
        data = FloatBuffer(count: panels * Self.width * b.rows)
        let nr = Self.width, k = b.rows
        for pn in 0 ..< panels {
            let dst = data.base + pn * k * nr, n0 = pn * nr, valid = min(nr, rows - n0)
            for p in 0 ..< k {
                let src = b.row(p) + n0
                for j in 0 ..< valid { dst[p * nr + j] = src[j] }
            }
        }
    }

    /// Packs `weight` viewed as `[rows × cols]`.
    public convenience init(_ weight: FloatBuffer, rows: Int, cols: Int) {
        self.init(weight.matrix(rows: rows, cols: cols))
    }

    public var bytes: Int { quant != nil ? panels * panelBytes : data.count * 4 }

    /// Bytes a packed `[rows × cols]` float matrix takes (rows padded to whole panels).
    static func bytes(rows: Int, cols: Int) -> Int { (rows + width - 1) / width * width * cols * 4 }

    /// Bytes the packed copy of `w` takes.
    static func bytes(for w: WeightMatrix, activations: ActivationMode) -> Int {
        if w.isFloat { return bytes(rows: w.rows, cols: w.cols) }
        if activations.isInteger && integerSupported(w) {
            let nr = Int(STRATA_IPANEL)
            return (w.rows + nr - 1) / nr * strata_ipanel_bytes(Int32(w.type.rawValue), Int32(w.cols))
        }
        return (w.rows + width - 1) / width * panelBytes(type: w.type, cols: w.cols)
    }
}

/// One kernel pass's share of the next panel to prefetch: `stride` floats per input step, two
/// hints a step (two cache lines when one pass fetches a whole panel), or none.
struct PanelPrefetch {
    let base: UnsafePointer<Float>?
    let stride: Int

    init(_ base: UnsafePointer<Float>?, stride: Int) { self.base = base; self.stride = stride }

    /// Called once per input step `p` of the kernel loop. The branch is loop-invariant: the
    /// compiler makes one loop with the prefetches and one without.
    @inline(__always)
    func step(_ p: Int) {
        if let base { strata_prefetch(base + p * stride); strata_prefetch(base + p * stride + stride / 2) }
    }
}

enum PackedGEMM {
    // The main micro-kernel takes 8 rows of A (8 rows × 2 registers = 16 accumulators of the 32
    // AVX-512 registers); with 16 registers (AVX2, NEON) it takes 6 (12 accumulators, two panel
    // registers and one broadcast: BLIS's 6×16 Haswell shape). Leftover rows go through the 4-row
    // and 1-row kernels (`sixes`).

    /// `C = A · Wᵀ (+ C)` for the output panels in `panels`, `A: [m × k]`, `C: [m × n]`.
    /// Each output is one chain of fused multiply-adds over `k` in order, whichever kernel and
    /// thread computes it, so a row's result does not depend on the other rows of the batch or on
    /// the thread count.
    /// A quantized `w` is unpacked a panel at a time into `scratch` (`w.scratchFloats` floats).
    static func run(a: Matrix, w: PackedMatrix, c: Matrix, panels: Range<Int>, accumulate: Bool,
                    scratch: UnsafeMutablePointer<Float>? = nil) {
        let m = a.rows, k = w.cols, nr = PackedMatrix.width, passes = passes(m)
        precondition(a.cols == k && c.rows == m && c.cols == w.rows && panels.upperBound <= w.panels)
        precondition(!w.isQuantized || scratch != nil, "a quantized matrix needs a scratch panel")
        if m == 0 { return }
        if let q = w.quant, m <= fusedQuantRows {
            // Few rows: each panel unpacked in registers, straight into the rows' multiply-adds;
            // a single row takes two panels at a time where the type allows (same results).
            let t = Int32(w.quantType!.rawValue)
            var pn = panels.lowerBound
            if m == 1 {
                while pn + 1 < panels.upperBound,
                      strata_qpanel_row_pair(t, q + pn * w.panelBytes, w.panelBytes, Int32(k), Int32(nr), a.base, c.base + pn * nr,
                                             Int32(min(nr, w.rows - (pn + 1) * nr)), accumulate ? 1 : 0) != 0 {
                    pn += 2
                }
            }
            while pn < panels.upperBound {
                let n0 = pn * nr
                strata_qpanel_rows(t, q + pn * w.panelBytes, Int32(k), Int32(nr), a.base, Int32(a.stride), Int32(m),
                                   c.base + n0, Int32(c.stride), Int32(min(nr, w.rows - n0)), accumulate ? 1 : 0)
                pn += 1
            }
            return
        }
        #if !STRATA_AVX512
        let sixBlocks = sixes(m)
        #endif
        for pn in panels {
            let pw: UnsafePointer<Float>
            let next: UnsafePointer<Float>?
            if let q = w.quant, let scratch {
                strata_qpanel_unpack(Int32(w.quantType!.rawValue), q + pn * w.panelBytes, Int32(k), Int32(nr), scratch)
                pw = UnsafePointer(scratch)
                next = nil
            } else {
                pw = UnsafePointer(w.data.base + pn * k * nr)
                // Each pass over a panel prefetches its share of the next panel, so that the next
                // panel's passes find it in cache while memory streams steadily behind the compute
                // (measured at 16 rows: 146 → 253 GFLOP/s on one core; at 32 rows 202 → 272). A
                // single row (matrix-vector) is left to the hardware prefetcher.
                next = pn + 1 < panels.upperBound && m > 1 ? pw + k * nr : nil
            }
            let n0 = pn * nr, valid = min(nr, w.rows - n0)
            // The first `fetchers` passes share the next panel, `stride` floats of it per input
            // step (at least two, so that each pass's hints move on); the passes after fetch nothing.
            let fetchers = min(passes, nr / 2), stride = nr / fetchers
            @inline(__always) func ahead(_ pass: Int) -> PanelPrefetch {
                PanelPrefetch(pass < fetchers ? next.map { $0 + pass * k * stride } : nil, stride: stride)
            }
            var pass = 0
            var i = 0
            #if STRATA_AVX512
            while i + 8 <= m {
                rows8(a.row(i), a.stride, pw, k, c.row(i) + n0, c.stride, valid, accumulate, ahead(pass))
                i += 8; pass += 1
            }
            #else
            for _ in 0 ..< sixBlocks {
                rows6(a.row(i), a.stride, pw, k, c.row(i) + n0, c.stride, valid, accumulate, ahead(pass))
                i += 6; pass += 1
            }
            #endif
            while i + 4 <= m {
                rows4(a.row(i), a.stride, pw, k, c.row(i) + n0, c.stride, valid, accumulate, ahead(pass))
                i += 4; pass += 1
            }
            while i < m {
                rows1(a.row(i), pw, k, c.row(i) + n0, valid, accumulate, ahead(pass))
                i += 1; pass += 1
            }
        }
    }

    /// Up to this many rows a quantized panel is unpacked in registers for each group of four rows
    /// (`strata_qpanel_rows`); more rows share one unpacking into the scratch panel. Both give
    /// every row the same floats and the same multiply-add chain, so the choice never changes a
    /// result.
    static let fusedQuantRows = 4

    /// Kernel calls per panel for `m` rows.
    @inline(__always)
    static func passes(_ m: Int) -> Int {
        #if STRATA_AVX512
        return m / 8 + m % 8 / 4 + m % 4
        #else
        let blocks = sixes(m), rest = m - 6 * blocks
        return blocks + rest / 4 + rest % 4
        #endif
    }

    #if !STRATA_AVX512
    /// Blocks of 6 rows for `m` rows with 16 registers. Two or three rows left over would go
    /// through the 1-row kernel, whose two chains leave the multiply-add units mostly idle, so
    /// the last block of 6 gives way to two blocks of 4 then (8 rows: 4 + 4, not 6 + 1 + 1).
    @inline(__always)
    static func sixes(_ m: Int) -> Int {
        let r = m % 6
        return m >= 6 && (r == 2 || r == 3) ? m / 6 - 1 : m / 6
    }
    #endif

    /// `run` over all panels, split across `threads` threads of the shared pool by panels. A
    /// quantized `w` needs `scratch` with `w.scratchFloats` floats for each thread, `stride` apart.
    /// Integer panels need `activationBlocks`; with `blocksReady` they already hold `a` quantized
    /// as `w` wants it (by the previous multiply, on the same input), and `a` is not read.
    static func parallel(a: Matrix, w: PackedMatrix, c: Matrix, accumulate: Bool, threads: Int,
                         scratch: UnsafeMutablePointer<Float>? = nil, stride: Int = 0,
                         activationBlocks: UnsafeMutableRawPointer? = nil, blocksReady: Bool = false) {
        let panels = w.panels
        if w.isInteger {
            // Quantize each row's activations once (rows split across the threads), then the
            // integer kernel over the panels.
            precondition(activationBlocks != nil, "integer panels need an activation buffer")
            let m = a.rows, k = w.cols, blocks = k / 32
            precondition(a.cols == k && c.rows == m && c.cols == w.rows)
            guard let activationBlocks, m > 0 else { return }
            let type = Int32(w.quantType!.rawValue), base = w.quant!
            let wide = w.integerActivations == .q24
            let q24 = wide ? activationBlocks.bindMemory(to: strata_q24_block.self, capacity: m * blocks) : nil
            let q8 = wide ? nil : activationBlocks.bindMemory(to: strata_q8_block.self, capacity: m * blocks)
            if !blocksReady {
                ThreadPool.shared.run(parts: min(threads, m)) { t, n in
                    for r in m * t / n ..< m * (t + 1) / n {
                        if let q24 { strata_quantize_q24(a.row(r), Int32(k), q24 + r * blocks) } else if let q8 { strata_quantize_q8(a.row(r), Int32(k), q8 + r * blocks) }
                    }
                }
            }
            ThreadPool.shared.run(parts: min(threads, panels)) { t, n in
                let p0 = Int32(panels * t / n), p1 = Int32(panels * (t + 1) / n), acc: Int32 = accumulate ? 1 : 0
                if let q24 {
                    strata_igemm24(type, base, Int32(k), Int32(w.rows), p0, p1, q24, Int32(blocks), Int32(m), c.base, Int32(c.stride), acc)
                } else if let q8 {
                    strata_igemm(type, base, Int32(k), Int32(w.rows), p0, p1, q8, Int32(blocks), Int32(m), c.base, Int32(c.stride), acc)
                }
            }
            return
        }
        precondition(!w.isQuantized || (scratch != nil && stride >= w.scratchFloats), "a quantized matrix needs scratch panels")
        ThreadPool.shared.run(parts: min(threads, panels)) { t, n in
            run(a: a, w: w, c: c, panels: panels * t / n ..< panels * (t + 1) / n, accumulate: accumulate,
                scratch: scratch.map { $0 + t * stride })
        }
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> PVec { UnsafeRawPointer(p).loadUnaligned(as: PVec.self) }

    /// Writes one row's two accumulators to `c` (adding to it with `accumulate`), `valid` lanes.
    @inline(__always)
    private static func store(_ lo: PVec, _ hi: PVec, _ c: UnsafeMutablePointer<Float>, _ valid: Int, _ accumulate: Bool) {
        let v = PVec.scalarCount
        if valid == 2 * v {
            let r = UnsafeMutableRawPointer(c)
            if accumulate {
                r.storeBytes(of: lo + load(c), as: PVec.self)
                r.storeBytes(of: hi + load(c + v), toByteOffset: v * 4, as: PVec.self)
            } else {
                r.storeBytes(of: lo, as: PVec.self)
                r.storeBytes(of: hi, toByteOffset: v * 4, as: PVec.self)
            }
        } else {
            for j in 0 ..< valid {
                let s = j < v ? lo[j] : hi[j - v]
                c[j] = accumulate ? c[j] + s : s
            }
        }
    }

    #if STRATA_AVX512
    /// The micro-kernel: 8 rows of A against one panel, `C[8 × 32]` in 16 registers. Per input:
    /// two panel loads, eight broadcasts, sixteen fused multiply-adds.
    @inline(__always)
    private static func rows8(_ a: UnsafePointer<Float>, _ lda: Int, _ pw: UnsafePointer<Float>, _ k: Int,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ valid: Int, _ accumulate: Bool,
                              _ prefetch: PanelPrefetch) {
        let v = PVec.scalarCount, nr = 2 * v
        let a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda, a6 = a5 + lda, a7 = a6 + lda
        var c00 = PVec(), c01 = PVec(), c10 = PVec(), c11 = PVec(), c20 = PVec(), c21 = PVec(), c30 = PVec(), c31 = PVec()
        var c40 = PVec(), c41 = PVec(), c50 = PVec(), c51 = PVec(), c60 = PVec(), c61 = PVec(), c70 = PVec(), c71 = PVec()
        var w = pw
        for p in 0 ..< k {
            prefetch.step(p)
            let y0 = load(w), y1 = load(w + v)
            var x = PVec(repeating: a0[p]); c00.addProduct(x, y0); c01.addProduct(x, y1)
            x = PVec(repeating: a1[p]); c10.addProduct(x, y0); c11.addProduct(x, y1)
            x = PVec(repeating: a2[p]); c20.addProduct(x, y0); c21.addProduct(x, y1)
            x = PVec(repeating: a3[p]); c30.addProduct(x, y0); c31.addProduct(x, y1)
            x = PVec(repeating: a4[p]); c40.addProduct(x, y0); c41.addProduct(x, y1)
            x = PVec(repeating: a5[p]); c50.addProduct(x, y0); c51.addProduct(x, y1)
            x = PVec(repeating: a6[p]); c60.addProduct(x, y0); c61.addProduct(x, y1)
            x = PVec(repeating: a7[p]); c70.addProduct(x, y0); c71.addProduct(x, y1)
            w += nr
        }
        store(c00, c01, c, valid, accumulate); store(c10, c11, c + ldc, valid, accumulate)
        store(c20, c21, c + 2 * ldc, valid, accumulate); store(c30, c31, c + 3 * ldc, valid, accumulate)
        store(c40, c41, c + 4 * ldc, valid, accumulate); store(c50, c51, c + 5 * ldc, valid, accumulate)
        store(c60, c61, c + 6 * ldc, valid, accumulate); store(c70, c71, c + 7 * ldc, valid, accumulate)
    }
    #endif

    #if !STRATA_AVX512
    /// The micro-kernel with 16 vector registers: 6 rows of A against one panel, `C[6 × 16]` in 12
    /// registers. Two fused multiply-add units with a 4-cycle latency need 8 independent chains to
    /// stay busy; 12 leave slack for the loads.
    @inline(__always)
    private static func rows6(_ a: UnsafePointer<Float>, _ lda: Int, _ pw: UnsafePointer<Float>, _ k: Int,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ valid: Int, _ accumulate: Bool,
                              _ prefetch: PanelPrefetch) {
        let v = PVec.scalarCount, nr = 2 * v
        let a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda
        var c00 = PVec(), c01 = PVec(), c10 = PVec(), c11 = PVec(), c20 = PVec(), c21 = PVec()
        var c30 = PVec(), c31 = PVec(), c40 = PVec(), c41 = PVec(), c50 = PVec(), c51 = PVec()
        var w = pw
        for p in 0 ..< k {
            prefetch.step(p)
            let y0 = load(w), y1 = load(w + v)
            var x = PVec(repeating: a0[p]); c00.addProduct(x, y0); c01.addProduct(x, y1)
            x = PVec(repeating: a1[p]); c10.addProduct(x, y0); c11.addProduct(x, y1)
            x = PVec(repeating: a2[p]); c20.addProduct(x, y0); c21.addProduct(x, y1)
            x = PVec(repeating: a3[p]); c30.addProduct(x, y0); c31.addProduct(x, y1)
            x = PVec(repeating: a4[p]); c40.addProduct(x, y0); c41.addProduct(x, y1)
            x = PVec(repeating: a5[p]); c50.addProduct(x, y0); c51.addProduct(x, y1)
            w += nr
        }
        store(c00, c01, c, valid, accumulate); store(c10, c11, c + ldc, valid, accumulate)
        store(c20, c21, c + 2 * ldc, valid, accumulate); store(c30, c31, c + 3 * ldc, valid, accumulate)
        store(c40, c41, c + 4 * ldc, valid, accumulate); store(c50, c51, c + 5 * ldc, valid, accumulate)
    }
    #endif

    /// `rows8`'s loop for four rows. The kernels are unrolled by hand, one per row count, so that
    /// every accumulator is a named local the compiler keeps in a register.
    @inline(__always)
    private static func rows4(_ a: UnsafePointer<Float>, _ lda: Int, _ pw: UnsafePointer<Float>, _ k: Int,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ valid: Int, _ accumulate: Bool,
                              _ prefetch: PanelPrefetch) {
        let v = PVec.scalarCount, nr = 2 * v
        let a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda
        var c00 = PVec(), c01 = PVec(), c10 = PVec(), c11 = PVec(), c20 = PVec(), c21 = PVec(), c30 = PVec(), c31 = PVec()
        var w = pw
        for p in 0 ..< k {
            prefetch.step(p)
            let y0 = load(w), y1 = load(w + v)
            var x = PVec(repeating: a0[p]); c00.addProduct(x, y0); c01.addProduct(x, y1)
            x = PVec(repeating: a1[p]); c10.addProduct(x, y0); c11.addProduct(x, y1)
            x = PVec(repeating: a2[p]); c20.addProduct(x, y0); c21.addProduct(x, y1)
            x = PVec(repeating: a3[p]); c30.addProduct(x, y0); c31.addProduct(x, y1)
            w += nr
        }
        store(c00, c01, c, valid, accumulate); store(c10, c11, c + ldc, valid, accumulate)
        store(c20, c21, c + 2 * ldc, valid, accumulate); store(c30, c31, c + 3 * ldc, valid, accumulate)
    }

    /// One row: a matrix-vector product, bound by reading the panel from memory.
    @inline(__always)
    private static func rows1(_ a: UnsafePointer<Float>, _ pw: UnsafePointer<Float>, _ k: Int,
                              _ c: UnsafeMutablePointer<Float>, _ valid: Int, _ accumulate: Bool,
                              _ prefetch: PanelPrefetch) {
        let v = PVec.scalarCount, nr = 2 * v
        var c00 = PVec(), c01 = PVec()
        var w = pw
        for p in 0 ..< k {
            prefetch.step(p)
            let x = PVec(repeating: a[p])
            c00.addProduct(x, load(w)); c01.addProduct(x, load(w + v))
            w += nr
        }
        store(c00, c01, c, valid, accumulate)
    }
}
