/// Vectorised math for the activation and attention kernels.
enum SIMDMath {
    typealias V = SIMD8<Float>

    /// e^x for 8 lanes, within 2 ulp of `expf` over [-87, 88] (Cephes' polynomial): split
    /// x = n·ln2 + r with |r| ≤ ln2/2, evaluate e^r by a degree-7 polynomial, scale by 2^n through
    /// the exponent bits. Inputs below -87.3 give ≈ 1e-38 (callers that need exact zeros set them).
    ///
    /// n is rounded by adding 1.5·2²³ (the float's own round-to-nearest), which also leaves n in the
    /// low mantissa bits; the standard library's SIMD `rounded(_:)` and float-to-int conversion
    /// run lane by lane and made this 13× slower.
    @inline(__always)
    static func exp(_ x: V) -> V {
        let x = clamp(x, V(repeating: -87.3), V(repeating: 88.7))
        let magic = V(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        var r = x - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 0.166_666_655
        p = p * r + 0.500_000_01
        p = p * (r * r) + r + 1
        let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    /// erf(x) for 8 lanes, within 1.5e-7 of the exact value (Abramowitz & Stegun 7.1.26):
    /// erf(|x|) = 1 − t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−x²), t = 1/(1 + p|x|), odd in x.
    @inline(__always)
    static func erf(_ x: V) -> V {
        let ax = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (1 + 0.327_591_1 * ax)
        var poly = V(repeating: 1.061_405_429)
        poly = poly * t - 1.453_152_027
        poly = poly * t + 1.421_413_741
        poly = poly * t - 0.284_496_736
        poly = poly * t + 0.254_829_592
        let y = 1 - poly * t * exp(-(ax * ax))
        return y.replacing(with: -y, where: x .< 0)
    }

    /// GELU with the exact (erf) form, 0.5·x·(1 + erf(x/√2)), in place over n values.
    static func geluErf(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = load(x + i)
            store(0.5 * v * (1 + erf(v * 0.707_106_781_186_547_5)), x + i)
            i += 8
        }
        while i < n {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erf(V(repeating: v * 0.707_106_781_186_547_5))[0])
            i += 1
        }
    }

    /// Σ x[i], 8 lanes at a time.
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s = V()
        var i = 0
        while i + 8 <= n { s += load(x + i); i += 8 }
        var r = s.sum()
        while i < n { r += x[i]; i += 1 }
        return r
    }

    /// Lane-wise maximum as one compare and blend. (The standard library's `pointwiseMax` was not
    /// inlined here: a generic call per vector, which cost the attention softmax a fifth of its time.)
    @inline(__always)
    static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .< b) }

    /// Lane-wise `min(max(x, lo), hi)`.
    @inline(__always)
    static func clamp(_ x: V, _ lo: V, _ hi: V) -> V {
        let y = x.replacing(with: lo, where: x .< lo)
        return y.replacing(with: hi, where: y .> hi)
    }

    /// e^x for one float, the same approximation as the vector version.
    @inline(__always)
    static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// Σ a[i]·b[i], 8 lanes at a time with two accumulators. The final reduction goes through
    /// halves (cheap extracts), not lane by lane.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = V(), s1 = V()
        var i = 0
        while i + 16 <= n {
            s0.addProduct(load(a + i), load(b + i))
            s1.addProduct(load(a + i + 8), load(b + i + 8))
            i += 16
        }
        if i + 8 <= n { s0.addProduct(load(a + i), load(b + i)); i += 8 }
        let s8 = s0 + s1
        let s4 = s8.lowHalf + s8.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        var r = s2[0] + s2[1]
        while i < n { r += a[i] * b[i]; i += 1 }
        return r
    }

    /// y[i] += alpha·x[i]
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = V(repeating: alpha)
        var i = 0
        while i + 8 <= n {
            var v = load(y + i)
            v.addProduct(a, load(x + i))
            store(v, y + i)
            i += 8
        }
        while i < n { y[i] += alpha * x[i]; i += 1 }
    }

    /// In place: x[i] = e^(x[i]·scale − max) / Σ, over n values; the max is found first.
    /// Returns nothing; `n` ≥ 1.
    @inline(__always)
    static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
        var m = -Float.infinity
        var i = 0
        var mv = V(repeating: -.infinity)
        while i + 8 <= n { mv = vmax(mv, load(x + i)); i += 8 }
        m = mv.max()
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        // With scale > 0, max(x·scale) = max(x)·scale.
        let shift = V(repeating: m * scale), sc = V(repeating: scale)
        var sum = V()
        i = 0
        while i + 8 <= n {
            let e = exp(load(x + i) * sc - shift)
            store(e, x + i)
            sum += e
            i += 8
        }
        var s = sum.sum()
        while i < n { let e = exp(x[i] * scale - m * scale); x[i] = e; s += e; i += 1 }
        let inv = V(repeating: 1 / s)
        i = 0
        while i + 8 <= n { store(load(x + i) * inv, x + i); i += 8 }
        let invs = 1 / s
        while i < n { x[i] *= invs; i += 1 }
    }

    /// Index of the largest of `n` values (the first, on ties); NaNs are never chosen unless all
    /// are NaN (then 0). Each lane keeps its own best value and index; the lanes are merged at the
    /// end. `n` ≥ 1.
    static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
        var i = 0
        var result = 0
        if n >= 16 {
            var best = V(repeating: -.infinity), bestIndex = SIMD8<Int32>(repeating: -1)
            var index = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
            let step = SIMD8<Int32>(repeating: 8)
            while i + 8 <= n {
                let v = load(x + i)
                let better = v .> best
                best.replace(with: v, where: better)
                bestIndex.replace(with: index, where: better)
                index &+= step
                i += 8
            }
            var top: Float = -.infinity
            var topIndex = Int32.max
            for l in 0 ..< 8 where bestIndex[l] >= 0 && (best[l] > top || (best[l] == top && bestIndex[l] < topIndex)) {
                top = best[l]; topIndex = bestIndex[l]
            }
            if topIndex == Int32.max {
                // Every value seen so far is NaN or -inf: fall back to the scalar scan below.
                i = 0
            } else {
                result = Int(topIndex)
            }
        }
        if i == 0 { result = 0; i = 1 }
        while i < n {
            if x[i] > x[result] || (x[result].isNaN && !x[i].isNaN) { result = i }
            i += 1
        }
        return result
    }
}
