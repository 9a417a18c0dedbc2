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
        for s in 0 ..< S {
            let krow = k + s * shape.kvDim + g * hd
            for i in 0 ..< G { scratch[i * S + s] = SIMDMath.dot(q + (h0 + i) * hd, krow, hd) }
        }
        for i in 0 ..< G {
            SIMDMath.softmax(scratch + i * S, S, scale: scale)
            (out + (h0 + i) * hd).update(repeating: 0, count: hd)
        }
        for s in 0 ..< S {
            let vrow = v + s * shape.kvDim + g * hd
            for i in 0 ..< G { SIMDMath.axpy(scratch[i * S + s], vrow, out + (h0 + i) * hd, hd) }
        }
    }

}
