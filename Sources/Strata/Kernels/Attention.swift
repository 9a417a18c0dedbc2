/// Attention kernels: the fused row kernel (the BLAS backend's decode rows; every row of the blas
/// and naive backends with a half-precision cache) and the `simd` backend's transposed kernel.
/// Both read the cache as stored, float32 or half precision (`KVElement`), and compute in float32.
enum Attention {
    struct Shape {
        let headDim: Int
        let heads: Int
        let kvHeads: Int
        let kvDim: Int
        var group: Int { heads / kvHeads }
    }

    /// One query row against its `visible` cached keys, for the query heads of KV head `g`, fused
    /// per head: scores, softmax, and the probability-weighted sum of values. The key and value
    /// rows of the group are read once per head from cache; the output accumulates in registers
    /// (eight SIMD8 sums for a 64-wide head), not in memory. `scratch` holds `visible` floats.
    /// With `capture`, each head's probabilities are also copied to `capture + h · captureStride`.
    /// Keys before `first` (outside a sliding window) are not read; their probabilities are 0.
    ///
    /// q: [qDim] (all heads of the row) · k, v: [positions, kvDim] (the slot's cache, float32 or
    /// half precision) · out: [qDim]
    static func fusedRow<E: KVElement>(q: UnsafePointer<Float>, k: UnsafePointer<E>, v: UnsafePointer<E>,
                         out: UnsafeMutablePointer<Float>, visible S: Int, first: Int = 0, kvHead g: Int, shape: Shape, scale: Float,
                         scratch: UnsafeMutablePointer<Float>, capture: UnsafeMutablePointer<Float>? = nil, captureStride: Int = 0) {
        let hd = shape.headDim, kvDim = shape.kvDim
        let kg = k + g * hd, vg = v + g * hd
        for h in g * shape.group ..< (g + 1) * shape.group {
            let qh = q + h * hd, o = out + h * hd
            for s in first ..< S { scratch[s] = dot(qh, kg + s * kvDim, hd) }
            SIMDMath.softmax(scratch + first, S - first, scale: scale)
            if let capture { copyProbabilities(scratch, to: capture + h * captureStride, first: first, visible: S) }
            if hd == 64 {
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
                for s in first ..< S {
                    let p = SIMD8<Float>(repeating: scratch[s]), r = vg + s * kvDim
                    a0.addProduct(p, E.load8(r)); a1.addProduct(p, E.load8(r + 8))
                    a2.addProduct(p, E.load8(r + 16)); a3.addProduct(p, E.load8(r + 24))
                    a4.addProduct(p, E.load8(r + 32)); a5.addProduct(p, E.load8(r + 40))
                    a6.addProduct(p, E.load8(r + 48)); a7.addProduct(p, E.load8(r + 56))
                }
                SIMDMath.store(a0, o); SIMDMath.store(a1, o + 8); SIMDMath.store(a2, o + 16); SIMDMath.store(a3, o + 24)
                SIMDMath.store(a4, o + 32); SIMDMath.store(a5, o + 40); SIMDMath.store(a6, o + 48); SIMDMath.store(a7, o + 56)
            } else {
                o.update(repeating: 0, count: hd)
                for s in first ..< S { axpy(scratch[s], vg + s * kvDim, o, hd) }
            }
        }
    }

    /// Σ a[i]·b[i] with `b` widened to float32: `SIMDMath.dot`'s arithmetic, in its order.
    @inline(__always)
    static func dot<E: KVElement>(_ a: UnsafePointer<Float>, _ b: UnsafePointer<E>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            s0.addProduct(SIMDMath.load(a + i), E.load8(b + i))
            s1.addProduct(SIMDMath.load(a + i + 8), E.load8(b + i + 8))
            i += 16
        }
        if i + 8 <= n { s0.addProduct(SIMDMath.load(a + i), E.load8(b + i)); i += 8 }
        let s8 = s0 + s1
        let s4 = s8.lowHalf + s8.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        var r = s2[0] + s2[1]
        while i < n { r += a[i] * b[i].float; i += 1 }
        return r
    }

    /// y[i] += alpha·x[i] with `x` widened to float32 (`SIMDMath.axpy`'s arithmetic).
    @inline(__always)
    static func axpy<E: KVElement>(_ alpha: Float, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = SIMD8<Float>(repeating: alpha)
        var i = 0
        while i + 8 <= n {
            var v = SIMDMath.load(y + i)
            v.addProduct(a, E.load8(x + i))
            SIMDMath.store(v, y + i)
            i += 8
        }
        while i < n { y[i] += alpha * x[i].float; i += 1 }
    }

    /// Keys scored per block by `transposedRow`: two vector registers' worth.
    static let keyBlock = 2 * PVec.scalarCount

    /// The `simd` backend's attention for one query row and the query heads of KV head `g`.
    ///
    /// Cache layout (one slot of one layer, `positions` a multiple of `keyBlock`): keys in blocks of
    /// `keyBlock` positions, each block transposed, `kt[((g·blocks + s/B)·headDim + d)·B + s%B]`
    /// for dimension `d` of head `g` at position `s`; values head by head,
    /// `v[(g·positions + s)·headDim + d]`. Both are read as contiguous streams.
    ///
    /// The group's query heads go through together, three at a time, so each key and value is read
    /// once for all three (a fourth or fifth head makes another pass; a pass with fewer than three
    /// heads repeats the last one and drops the copy). Scores need no horizontal sums: for each
    /// head dimension, one broadcast query value per head times two registers of consecutive keys.
    /// The block past the last visible key also scores the cache positions after it; those
    /// scores are never read (softmax and values stop at `visible`). Values: each head's probability broadcast against the value row. Every row is
    /// computed the same way whatever else is in the batch. `scratch` holds `3 × positions` floats.
    /// Keys before `first` (outside a sliding window) are skipped a block at a time; the rest of
    /// their block is scored but left out of softmax and values.
    static func transposedRow<E: KVElement>(q: UnsafePointer<Float>, kt: UnsafePointer<E>, v: UnsafePointer<E>, positions: Int,
                              out: UnsafeMutablePointer<Float>, visible S: Int, first: Int = 0, kvHead g: Int, shape: Shape, scale: Float,
                              scratch: UnsafeMutablePointer<Float>, capture: UnsafeMutablePointer<Float>? = nil, captureStride: Int = 0) {
        let hd = shape.headDim, w = PVec.scalarCount, kb = keyBlock
        let ktg = kt + g * hd * positions, vg = v + g * positions * hd
        let p0 = scratch, p1 = scratch + positions, p2 = scratch + 2 * positions
        var h0 = g * shape.group
        let hEnd = h0 + shape.group
        while h0 < hEnd {
            let h1 = min(h0 + 1, hEnd - 1), h2 = min(h0 + 2, hEnd - 1)
            let q0 = q + h0 * hd, q1 = q + h1 * hd, q2 = q + h2 * hd
            var s0 = first / kb * kb
            var block = ktg + s0 * hd
            while s0 < S {
                var a0 = PVec(), a1 = PVec(), b0 = PVec(), b1 = PVec(), c0 = PVec(), c1 = PVec()
                var row = block
                for d in 0 ..< hd {
                    let k0 = E.loadVec(row), k1 = E.loadVec(row + w)
                    let x = PVec(repeating: q0[d]), y = PVec(repeating: q1[d]), z = PVec(repeating: q2[d])
                    a0.addProduct(x, k0); a1.addProduct(x, k1)
                    b0.addProduct(y, k0); b1.addProduct(y, k1)
                    c0.addProduct(z, k0); c1.addProduct(z, k1)
                    row += kb
                }
                store(a0, p0 + s0); store(a1, p0 + s0 + w)
                store(b0, p1 + s0); store(b1, p1 + s0 + w)
                store(c0, p2 + s0); store(c1, p2 + s0 + w)
                s0 += kb
                block += hd * kb
            }
            let n = S - first
            SIMDMath.softmax(p0 + first, n, scale: scale)
            if h1 != h0 { SIMDMath.softmax(p1 + first, n, scale: scale) }
            if h2 != h1 { SIMDMath.softmax(p2 + first, n, scale: scale) }
            if let capture {
                copyProbabilities(p0, to: capture + h0 * captureStride, first: first, visible: S)
                if h1 != h0 { copyProbabilities(p1, to: capture + h1 * captureStride, first: first, visible: S) }
                if h2 != h1 { copyProbabilities(p2, to: capture + h2 * captureStride, first: first, visible: S) }
            }
            let o0 = out + h0 * hd, o1 = out + h1 * hd, o2 = out + h2 * hd
            var j = 0
            if w == 16 && hd == 4 * w {
                // A whole value row in four registers a head (AVX-512, head size 64): one pass over
                // the values instead of two, with the same multiply-add chain for every output.
                // It takes 19 live vectors (12 sums, 4 values, 3 probabilities): AVX-512 only, as
                // AVX2's 16 registers would spill.
                var a0 = PVec(), a1 = PVec(), a2 = PVec(), a3 = PVec()
                var b0 = PVec(), b1 = PVec(), b2 = PVec(), b3 = PVec()
                var c0 = PVec(), c1 = PVec(), c2 = PVec(), c3 = PVec()
                var r = vg + first * hd
                for s in first ..< S {
                    let v0 = E.loadVec(r), v1 = E.loadVec(r + w), v2 = E.loadVec(r + 2 * w), v3 = E.loadVec(r + 3 * w)
                    let x = PVec(repeating: p0[s]), y = PVec(repeating: p1[s]), z = PVec(repeating: p2[s])
                    a0.addProduct(x, v0); a1.addProduct(x, v1); a2.addProduct(x, v2); a3.addProduct(x, v3)
                    b0.addProduct(y, v0); b1.addProduct(y, v1); b2.addProduct(y, v2); b3.addProduct(y, v3)
                    c0.addProduct(z, v0); c1.addProduct(z, v1); c2.addProduct(z, v2); c3.addProduct(z, v3)
                    r += hd
                }
                store(c0, o2); store(c1, o2 + w); store(c2, o2 + 2 * w); store(c3, o2 + 3 * w)
                store(b0, o1); store(b1, o1 + w); store(b2, o1 + 2 * w); store(b3, o1 + 3 * w)
                store(a0, o0); store(a1, o0 + w); store(a2, o0 + 2 * w); store(a3, o0 + 3 * w)
                j = hd
            }
            while j + 2 * w <= hd {
                var a0 = PVec(), a1 = PVec(), b0 = PVec(), b1 = PVec(), c0 = PVec(), c1 = PVec()
                var r = vg + first * hd + j
                for s in first ..< S {
                    let v0 = E.loadVec(r), v1 = E.loadVec(r + w)
                    let x = PVec(repeating: p0[s]), y = PVec(repeating: p1[s]), z = PVec(repeating: p2[s])
                    a0.addProduct(x, v0); a1.addProduct(x, v1)
                    b0.addProduct(y, v0); b1.addProduct(y, v1)
                    c0.addProduct(z, v0); c1.addProduct(z, v1)
                    r += hd
                }
                // A head repeated to fill the pass shares its output row with the real one, which
                // is stored last and so wins (the copy's probabilities skipped the softmax).
                store(c0, o2 + j); store(c1, o2 + j + w)
                store(b0, o1 + j); store(b1, o1 + j + w)
                store(a0, o0 + j); store(a1, o0 + j + w)
                j += 2 * w
            }
            if j < hd {
                // Head sizes that are not a multiple of two registers: the rest lane by lane.
                for pass in 0 ..< 3 {
                    let (p, o) = pass == 0 ? (p2, o2) : pass == 1 ? (p1, o1) : (p0, o0)
                    for d in j ..< hd {
                        var sum: Float = 0
                        for s in first ..< S { sum += p[s] * vg[s * hd + d].float }
                        o[d] = sum
                    }
                }
            }
            h0 += 3
        }
    }

    /// A head's probabilities over positions `0 ..< visible` (0 before `first`) into `capture`.
    @inline(__always)
    private static func copyProbabilities(_ p: UnsafePointer<Float>, to capture: UnsafeMutablePointer<Float>, first: Int, visible: Int) {
        capture.update(repeating: 0, count: first)
        (capture + first).update(from: p + first, count: visible - first)
    }

    @inline(__always)
    private static func store(_ v: PVec, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: PVec.self) }
}
