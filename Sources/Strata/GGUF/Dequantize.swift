/// Dequantization of ggml block formats to float32, exactly as ggml defines the blocks and with
/// ggml's float operations in ggml's order (`dequantize_row_*`), so that every value is the same
/// float. The quantized panels of the `simd` backend (CSystem/CQuant) unpack to the same floats.
///
/// Every block of 32 weights starts with a half-precision scale `d` (and for the `_1` types a
/// half-precision minimum `m`). In the 4- and 5-bit types, byte `j` of `qs` holds weight `j` in its
/// low nibble and weight `j + 16` in its high nibble; the 5-bit types keep the fifth bits in a
/// little-endian 32-bit `qh`, bit `j` for weight `j`.
public enum Dequantize {
    /// Dequantizes `count` elements of `type` from `src` into `dst`.
    public static func run(_ type: GGMLType, src: UnsafeRawBufferPointer, count: Int,
                           into dst: UnsafeMutableBufferPointer<Float>) {
        let (qk, blockBytes) = type.blockLayout
        precondition(count % qk == 0, "element count \(count) is not a multiple of the block size \(qk)")
        precondition(src.count >= count / qk * blockBytes, "source too short for \(count) \(type) elements")
        precondition(dst.count >= count, "destination too short")
        guard count > 0 else { return }
        let s = src.baseAddress!
        let y = dst.baseAddress!
        let blocks = count / qk
        switch type {
        case .f32:
            for i in 0 ..< count { y[i] = s.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0 ..< count { y[i] = half(s, 2 * i) }
        case .bf16:
            for i in 0 ..< count {
                let b = s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                y[i] = Float(bitPattern: UInt32(UInt16(littleEndian: b)) << 16)
            }
        case .q8_0:
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let d = half(p, 0)
                let q = (p + 2).assumingMemoryBound(to: Int8.self)
                let out = y + b * 32
                for j in 0 ..< 32 { out[j] = Float(q[j]) * d }
            }
        case .q4_0, .q4_1:
            let hasMin = type == .q4_1
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let d = half(p, 0)
                let qs = (p + (hasMin ? 4 : 2)).assumingMemoryBound(to: UInt8.self)
                let out = y + b * 32
                if hasMin {
                    let m = half(p, 2)
                    for j in 0 ..< 16 {
                        out[j] = Float(qs[j] & 0x0F) * d + m
                        out[j + 16] = Float(qs[j] >> 4) * d + m
                    }
                } else {
                    for j in 0 ..< 16 {
                        out[j] = Float(Int32(qs[j] & 0x0F) - 8) * d
                        out[j + 16] = Float(Int32(qs[j] >> 4) - 8) * d
                    }
                }
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let d = half(p, 0)
                let qhOffset = hasMin ? 4 : 2
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: qhOffset, as: UInt32.self))
                let qs = (p + qhOffset + 4).assumingMemoryBound(to: UInt8.self)
                let out = y + b * 32
                let m: Float = hasMin ? half(p, 2) : 0
                for j in 0 ..< 16 {
                    let q0 = Int32(qs[j] & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
                    let q1 = Int32(qs[j] >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
                    if hasMin {
                        out[j] = Float(q0) * d + m
                        out[j + 16] = Float(q1) * d + m
                    } else {
                        out[j] = Float(q0 - 16) * d
                        out[j + 16] = Float(q1 - 16) * d
                    }
                }
            }
        case .q2_K:
            // 16 sub-blocks of 16: a 4-bit scale and a 4-bit minimum each, 2-bit values.
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let scales = p.assumingMemoryBound(to: UInt8.self)
                var q = (p + 16).assumingMemoryBound(to: UInt8.self)
                let d = half(p, 80), dmin = half(p, 82)
                var out = y + b * 256
                var i = 0
                for _ in 0 ..< 2 {
                    for j in 0 ..< 4 {
                        let shift = UInt8(2 * j)
                        for h in 0 ..< 2 {
                            let sc = scales[i]; i += 1
                            let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                            for l in 0 ..< 16 { out[l] = dl * Float((q[16 * h + l] >> shift) & 3) - ml }
                            out += 16
                        }
                    }
                    q += 32
                }
            }
        case .q3_K:
            // 16 sub-blocks of 16 with 6-bit signed scales; values: 2 low bits and a high bit
            // (a cleared high bit subtracts 4).
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let hm = p.assumingMemoryBound(to: UInt8.self)
                var q = (p + 32).assumingMemoryBound(to: UInt8.self)
                let sc = (p + 96).assumingMemoryBound(to: UInt8.self)
                let dAll = half(p, 108)
                // The sixteen 6-bit scales: low four bits in bytes 0..7, high two in bytes 8..11.
                func scale(_ j: Int) -> Int32 {
                    let lo = j < 8 ? Int32(sc[j] & 15) : Int32(sc[j - 8] >> 4)
                    let hi = Int32((sc[8 + j % 4] >> UInt8(2 * (j / 4))) & 3)
                    return (lo | hi << 4) - 32
                }
                var out = y + b * 256
                var i = 0
                var m: UInt8 = 1
                for _ in 0 ..< 2 {
                    for j in 0 ..< 4 {
                        let shift = UInt8(2 * j)
                        for h in 0 ..< 2 {
                            let dl = dAll * Float(scale(i)); i += 1
                            for l in 0 ..< 16 {
                                let v = Int32((q[16 * h + l] >> shift) & 3) - (hm[16 * h + l] & m != 0 ? 0 : 4)
                                out[l] = dl * Float(v)
                            }
                            out += 16
                        }
                        m <<= 1
                    }
                    q += 32
                }
            }
        case .q4_K, .q5_K:
            // 8 sub-blocks of 32 with 6-bit scales and minimums packed in 12 bytes.
            let five = type == .q5_K
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let d = half(p, 0), dmin = half(p, 2)
                let scales = (p + 4).assumingMemoryBound(to: UInt8.self)
                let qh = (p + 16).assumingMemoryBound(to: UInt8.self)
                var q = (p + (five ? 48 : 16)).assumingMemoryBound(to: UInt8.self)
                var out = y + b * 256
                for t in 0 ..< 4 {
                    for h in 0 ..< 2 {
                        let (sc, mn) = scaleMinK4(2 * t + h, scales)
                        let d1 = d * Float(sc), m1 = dmin * Float(mn)
                        let bit = UInt8(1) << UInt8(2 * t + h)
                        for l in 0 ..< 32 {
                            var v = h == 0 ? q[l] & 0xF : q[l] >> 4
                            if five && qh[l] & bit != 0 { v += 16 }
                            out[l] = d1 * Float(v) - m1
                        }
                        out += 32
                    }
                    q += 32
                }
            }
        case .q6_K:
            // 16 sub-blocks of 16 with signed 8-bit scales; 6-bit values minus 32.
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                var ql = p.assumingMemoryBound(to: UInt8.self)
                var qh = (p + 128).assumingMemoryBound(to: UInt8.self)
                var sc = (p + 192).assumingMemoryBound(to: Int8.self)
                let d = half(p, 208)
                var out = y + b * 256
                for _ in 0 ..< 2 {
                    for l in 0 ..< 32 {
                        let i = l / 16
                        let q1 = Int32((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32
                        let q2 = Int32((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32
                        let q3 = Int32((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32
                        let q4 = Int32((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32
                        out[l] = d * Float(sc[i]) * Float(q1)
                        out[l + 32] = d * Float(sc[i + 2]) * Float(q2)
                        out[l + 64] = d * Float(sc[i + 4]) * Float(q3)
                        out[l + 96] = d * Float(sc[i + 6]) * Float(q4)
                    }
                    out += 128; ql += 64; qh += 32; sc += 8
                }
            }
        default:
            preconditionFailure("Dequantize.run called with unsupported type \(type); check isSupported first")
        }
    }

    /// Scale and minimum `j` of a Q4_K/Q5_K block's 12 packed bytes (6 bits each).
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4, (q[j + 4] >> 4) | (q[j] >> 6) << 4)
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}
