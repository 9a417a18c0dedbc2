/// Attention kernels of the BLAS backend (the naive backend runs textbook GEMM loops instead).
enum Attention {
    struct Shape {
        let headDim: Int
        let heads: Int
        let kvHeads: Int
        let qDim: Int
        let kvDim: Int
        var group: Int { heads / kvHeads }
    }

    /// One query row against its `visible` cached keys, for the query heads of KV head `g`, fused:
    /// scores (each key row read once for the whole group), softmax, and the weighted sum of values
    /// (each value row read once). `scratch` holds `group × visible` floats.
    ///
    /// q: [qDim] (all heads of the row) · k, v: [positions, kvDim] (the slot's cache) · out: [qDim]
    static func fusedRow(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         out: UnsafeMutablePointer<Float>, visible S: Int, kvHead g: Int, shape: Shape, scale: Float,
                         scratch: UnsafeMutablePointer<Float>) {
        let hd = shape.headDim, G = shape.group
        let h0 = g * G
        // Scores: each key row is read once for the group's heads.
        for s in 0 ..< S {
            let krow = k + s * shape.kvDim + g * hd
            for i in 0 ..< G { scratch[i * S + s] = dot(q + (h0 + i) * hd, krow, hd) }
        }
        for i in 0 ..< G { SIMDMath.softmax(scratch + i * S, S, scale: scale) }
        // Values: out_h = Σ_s p_h[s]·V[s], 32 dimensions at a time with the sums in registers.
        if hd % 32 == 0 && G <= 4 {
            var d = 0
            while d < hd {
                withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 16) { a in
                    a.initialize(repeating: SIMD8<Float>())
                    for s in 0 ..< S {
                        let vrow = v + s * shape.kvDim + g * hd + d
                        let v0 = SIMDMath.load(vrow), v1 = SIMDMath.load(vrow + 8), v2 = SIMDMath.load(vrow + 16), v3 = SIMDMath.load(vrow + 24)
                        for i in 0 ..< G {
                            let p = SIMD8<Float>(repeating: scratch[i * S + s])
                            a[4 * i].addProduct(p, v0); a[4 * i + 1].addProduct(p, v1)
                            a[4 * i + 2].addProduct(p, v2); a[4 * i + 3].addProduct(p, v3)
                        }
                    }
                    for i in 0 ..< G {
                        let o = out + (h0 + i) * hd + d
                        SIMDMath.store(a[4 * i], o); SIMDMath.store(a[4 * i + 1], o + 8)
                        SIMDMath.store(a[4 * i + 2], o + 16); SIMDMath.store(a[4 * i + 3], o + 24)
                    }
                }
                d += 32
            }
        } else {
            for i in 0 ..< G { (out + (h0 + i) * hd).update(repeating: 0, count: hd) }
            for s in 0 ..< S {
                let vrow = v + s * shape.kvDim + g * hd
                for i in 0 ..< G { SIMDMath.axpy(scratch[i * S + s], vrow, out + (h0 + i) * hd, hd) }
            }
        }
    }

    /// A dot product whose final reduction goes through halves (cheap extracts), not lane by lane.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            s0.addProduct(SIMDMath.load(a + i), SIMDMath.load(b + i))
            s1.addProduct(SIMDMath.load(a + i + 8), SIMDMath.load(b + i + 8))
            i += 16
        }
        if i + 8 <= n { s0.addProduct(SIMDMath.load(a + i), SIMDMath.load(b + i)); i += 8 }
        let s8 = s0 + s1
        let s4 = s8.lowHalf + s8.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        var r = s2[0] + s2[1]
        while i < n { r += a[i] * b[i]; i += 1 }
        return r
    }
}
