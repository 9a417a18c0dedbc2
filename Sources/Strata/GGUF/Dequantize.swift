/// Dequantization of ggml block formats to float32, exactly as ggml defines the blocks.
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
                let m: Float = hasMin ? half(p, 2) : 0
                let qs = (p + (hasMin ? 4 : 2)).assumingMemoryBound(to: UInt8.self)
                let bias: Int32 = hasMin ? 0 : -8
                let out = y + b * 32
                for j in 0 ..< 16 {
                    out[j] = Float(Int32(qs[j] & 0x0F) + bias) * d + m
                    out[j + 16] = Float(Int32(qs[j] >> 4) + bias) * d + m
                }
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            for b in 0 ..< blocks {
                let p = s + b * blockBytes
                let d = half(p, 0)
                let m: Float = hasMin ? half(p, 2) : 0
                let qhOffset = hasMin ? 4 : 2
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: qhOffset, as: UInt32.self))
                let qs = (p + qhOffset + 4).assumingMemoryBound(to: UInt8.self)
                let bias: Int32 = hasMin ? 0 : -16
                let out = y + b * 32
                for j in 0 ..< 16 {
                    let hi0 = Int32((qh >> UInt32(j)) & 1) << 4
                    let hi1 = Int32((qh >> UInt32(j + 16)) & 1) << 4
                    out[j] = Float((Int32(qs[j] & 0x0F) | hi0) + bias) * d + m
                    out[j + 16] = Float((Int32(qs[j] >> 4) | hi1) + bias) * d + m
                }
            }
        default:
            preconditionFailure("Dequantize.run called with unsupported type \(type); check isSupported first")
        }
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}
