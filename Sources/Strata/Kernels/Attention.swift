/// Attention kernels of the BLAS backend (the naive backend runs textbook GEMM loops instead).
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
    ///
    /// q: [qDim] (all heads of the row) · k, v: [positions, kvDim] (the slot's cache) · out: [qDim]
    static func fusedRow(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         out: UnsafeMutablePointer<Float>, visible S: Int, kvHead g: Int, shape: Shape, scale: Float,
                         scratch: UnsafeMutablePointer<Float>) {
        let hd = shape.headDim, kvDim = shape.kvDim
        let kg = k + g * hd, vg = v + g * hd
        for h in g * shape.group ..< (g + 1) * shape.group {
            let qh = q + h * hd, o = out + h * hd
            for s in 0 ..< S { scratch[s] = SIMDMath.dot(qh, kg + s * kvDim, hd) }
            SIMDMath.softmax(scratch, S, scale: scale)
            if hd == 64 {
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
                for s in 0 ..< S {
                    let p = SIMD8<Float>(repeating: scratch[s]), r = vg + s * kvDim
                    a0.addProduct(p, SIMDMath.load(r)); a1.addProduct(p, SIMDMath.load(r + 8))
                    a2.addProduct(p, SIMDMath.load(r + 16)); a3.addProduct(p, SIMDMath.load(r + 24))
                    a4.addProduct(p, SIMDMath.load(r + 32)); a5.addProduct(p, SIMDMath.load(r + 40))
                    a6.addProduct(p, SIMDMath.load(r + 48)); a7.addProduct(p, SIMDMath.load(r + 56))
                }
                SIMDMath.store(a0, o); SIMDMath.store(a1, o + 8); SIMDMath.store(a2, o + 16); SIMDMath.store(a3, o + 24)
                SIMDMath.store(a4, o + 32); SIMDMath.store(a5, o + 40); SIMDMath.store(a6, o + 48); SIMDMath.store(a7, o + 56)
            } else {
                o.update(repeating: 0, count: hd)
                for s in 0 ..< S { SIMDMath.axpy(scratch[s], vg + s * kvDim, o, hd) }
            }
        }
    }
}
