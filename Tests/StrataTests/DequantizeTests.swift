import Foundation
import Testing
@testable import Strata

@Suite struct DequantizeTests {
    func run(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { Dequantize.run(type, src: src, count: count, into: $0) } }
        return out
    }

    func half(_ f: Float) -> [UInt8] { Quantize.half(f) }

    @Test func f32F16BF16() {
        let f: [Float] = [1, -2.5, 0, 65504]
        var b: [UInt8] = []
        for v in f { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
        #expect(run(.f32, b, count: 4) == f)
        #expect(run(.f16, f.flatMap(half), count: 4) == f)
        // bf16 is the top half of a float32: 1.0 = 0x3F80, -2.5 = 0xC020
        #expect(run(.bf16, [0x80, 0x3F, 0x20, 0xC0], count: 2) == [1, -2.5])
    }

    @Test func q8_0() {
        // d = 0.5; q = -128...-97 → x = q · 0.5
        let q = (0 ..< 32).map { Int8(-128 + $0) }
        let block = half(0.5) + q.map { UInt8(bitPattern: $0) }
        #expect(run(.q8_0, block, count: 32) == q.map { Float($0) * 0.5 })
    }

    @Test func q4_0AndQ4_1() {
        // Byte j holds weight j (low nibble) and weight j+16 (high nibble).
        let qs = (0 ..< 16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let low = (0 ..< 16).map { Float($0) }, high = (0 ..< 16).map { Float(15 - $0) }
        let q40 = run(.q4_0, half(2) + qs, count: 32)
        #expect(q40 == (low + high).map { ($0 - 8) * 2 })
        let q41 = run(.q4_1, half(0.25) + half(-1) + qs, count: 32)
        #expect(q41 == (low + high).map { $0 * 0.25 - 1 })
    }

    @Test func q5_0AndQ5_1() {
        // Fifth bits: qh bit j for weight j, bit j+16 for weight j+16. Set bits 0, 3, 16, 31.
        let qh: UInt32 = 1 << 0 | 1 << 3 | 1 << 16 | 1 << 31
        let qhBytes = withUnsafeBytes(of: qh.littleEndian, Array.init)
        let qs = (0 ..< 16).map { UInt8($0) | UInt8($0 % 7) << 4 }
        var expected = [Float](repeating: 0, count: 32)
        for j in 0 ..< 16 {
            expected[j] = Float(j + ((qh >> UInt32(j)) & 1 == 1 ? 16 : 0))
            expected[j + 16] = Float(j % 7 + ((qh >> UInt32(j + 16)) & 1 == 1 ? 16 : 0))
        }
        #expect(run(.q5_0, half(0.5) + qhBytes + qs, count: 32) == expected.map { ($0 - 16) * 0.5 })
        #expect(run(.q5_1, half(0.5) + half(3) + qhBytes + qs, count: 32) == expected.map { $0 * 0.5 + 3 })
    }

    @Test func multipleBlocksAndRoundTripOfTestQuantizer() {
        var rng = TestRNG(seed: 3)
        let x = rng.floats(96)
        let y = run(.q8_0, Quantize.encode(x, as: .q8_0), count: 96)
        for i in 0 ..< 96 { #expect(abs(x[i] - y[i]) <= 1.0 / 127 + 1e-3) }
        let z = run(.q4_1, Quantize.encode(x, as: .q4_1), count: 96)
        for i in 0 ..< 96 { #expect(abs(x[i] - z[i]) <= 2.0 / 15 / 2 + 2e-3) }
    }
}
