import CQuant
import Foundation
import Testing
@testable import Strata

/// Quantized weights: dequantization of every type against independent references, the panels
/// the `simd` kernels run on, and quantized matrix multiplies against float32 ones.
@Suite struct QuantTests {
    static let allTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    struct RNG {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 11 }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
        mutating func float() -> Float { Float(next() % 2_000_001) / 1_000_000 - 1 }
    }

    /// Random blocks of `type`: random bytes, with every half-precision field a finite scale.
    static func randomBlocks(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var rng = RNG(s: seed)
        let (qk, size) = type.blockLayout
        var out: [UInt8] = []
        for _ in 0 ..< rows * cols / qk {
            var b = (0 ..< size).map { _ in rng.byte() }
            func setHalf(_ at: Int) {
                let h = Float16(Float(rng.next() % 1000) / 4000 - 0.1).bitPattern
                b[at] = UInt8(h & 0xFF); b[at + 1] = UInt8(h >> 8)
            }
            switch type {
            case .f32: let f = rng.float(); withUnsafeBytes(of: f.bitPattern.littleEndian) { b = Array($0) }
            case .f16: setHalf(0)
            case .bf16: b[1] = 0x3C | (b[1] & 0x80)   // |x| in [2^-7, 2^-6): finite
            case .q4_0, .q5_0, .q8_0: setHalf(0)
            case .q4_1, .q5_1: setHalf(0); setHalf(2)
            case .q2_K: setHalf(80); setHalf(82)
            case .q3_K: setHalf(108)
            case .q4_K, .q5_K: setHalf(0); setHalf(2)
            case .q6_K: setHalf(208)
            default: break
            }
            out += b
        }
        return out
    }

    static func dequantize(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { Dequantize.run(type, src: src, count: count, into: $0) } }
        return out
    }

    // MARK: - Panels

    /// Packing a panel and unpacking it gives exactly `Dequantize`'s floats, in the micro-kernel's
    /// `[k][W]` layout, for both panel widths (AVX-512 and AVX2 builds), with padding rows zero.
    @Test(arguments: allTypes)
    func panelsUnpackToTheDequantizedValues(type: GGMLType) {
        let qk = type.blockLayout.elements
        let cols = max(2 * qk, 64)
        for width in [16, 32] {
            let rows = width - 3
            let bytes = Self.randomBlocks(type, rows: rows, cols: cols, seed: UInt64(type.rawValue) + UInt64(width))
            let expected = Self.dequantize(type, bytes, count: rows * cols)
            let t = Int32(type.rawValue)
            let rowBytes = cols / qk * type.blockLayout.bytes
            let panelBytes = cols / Int(strata_qpanel_block_values(t)) * Int(strata_qpanel_block_bytes(t, Int32(width)))
            #expect(panelBytes * 100 <= width * rowBytes * 104, "\(type): panel \(panelBytes) B for \(width) rows of \(rowBytes) B")
            var panel = [UInt8](repeating: 0xAA, count: panelBytes)
            var out = [Float](repeating: .nan, count: width * cols)
            bytes.withUnsafeBytes { src in panel.withUnsafeMutableBytes { dst in
                strata_qpanel_pack(t, src.baseAddress!, rowBytes, Int32(rows), Int32(cols), Int32(width), dst.baseAddress!)
            } }
            panel.withUnsafeBytes { p in out.withUnsafeMutableBufferPointer { strata_qpanel_unpack(t, p.baseAddress!, Int32(cols), Int32(width), $0.baseAddress!) } }
            var mismatches = 0
            for j in 0 ..< width {
                for p in 0 ..< cols {
                    let want: Float = j < rows ? expected[j * cols + p] : 0
                    if out[p * width + j].bitPattern != want.bitPattern && !(want == 0 && out[p * width + j] == 0) { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "\(type) width \(width): \(mismatches) values differ from Dequantize")

            // The fused kernel (panel unpacked in registers) against an FMA chain over the floats.
            for m in [1, 2, 3, 4, 5] {
                var rng = RNG(s: UInt64(m))
                let a = (0 ..< m * cols).map { _ in rng.float() }
                var c = [Float](repeating: 0.5, count: m * width)
                panel.withUnsafeBytes { p in
                    strata_qpanel_rows(t, p.baseAddress!, Int32(cols), Int32(width), a, Int32(cols), Int32(m), &c, Int32(width), Int32(rows), 1)
                }
                for r in 0 ..< m {
                    for j in 0 ..< width {
                        var acc: Float = 0
                        for p in 0 ..< cols { acc.addProduct(a[r * cols + p], out[p * width + j]) }
                        let want: Float = j < rows ? acc + 0.5 : 0.5
                        #expect(c[r * width + j].bitPattern == want.bitPattern, "\(type) w\(width) m\(m) row \(r) out \(j)")
                    }
                }
            }
        }
    }

    // MARK: - Matrix multiplies

    /// A quantized weight against the same values as float32, on every backend. Float activations
    /// (naive; simd by default) give the float32 result bit for bit (same values, same operation
    /// order); blas is within rounding; simd with `.q8` activations on the integer kernels (Q4_0,
    /// Q4_1, Q8_0) stays within the error bound of the 8-bit activation rounding, and with `.q24`
    /// within that of the 24-bit rounding (half of max|x| / (127 · 254²) per value) plus float
    /// rounding. Row counts and widths that are not multiples of the blocks or panels, threads 1
    /// and 2.
    @Test(arguments: [GGMLType.q4_1, .q8_0, .q4_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .f16, .bf16, .q2_K, .q3_K])
    func quantizedMatmulEqualsFloat(type: GGMLType) {
        let qk = type.blockLayout.elements
        let cols = qk == 256 ? 512 : 96, rows = 45
        let bytes = Self.randomBlocks(type, rows: rows, cols: cols, seed: 99 + UInt64(type.rawValue))
        let values = Self.dequantize(type, bytes, count: rows * cols)
        let q = WeightMatrix(name: "w", type: type, rows: rows, cols: cols, blocks: bytes)
        let f = WeightMatrix(name: "w", floats: FloatBuffer(values), rows: rows, cols: cols)
        let integer = PackedMatrix(q, activations: .q8).isInteger
        #expect(integer == [.q4_0, .q4_1, .q8_0].contains(type) && !PackedMatrix(q).isInteger)
        for m in [1, 3, 4, 5, 9, 17] {
            var rng = RNG(s: UInt64(m) * 7)
            let av = (0 ..< m * cols).map { _ in rng.float() * (rng.next() % 4 == 0 ? 8 : 1) }
            let a = FloatBuffer(av)
            for backend in Backend.allCases {
              for act in backend == .simd ? ActivationMode.allCases : [.f32] {
                for threads in backend == .simd ? [1, 2] : [1] {
                    let cq = FloatBuffer(count: m * rows), cf = FloatBuffer(count: m * rows)
                    Kernels.matmul(backend, a: a, weight: q, c: cq, m: m, threads: threads, activations: act)
                    Kernels.matmul(backend, a: a, weight: f, c: cf, m: m, threads: threads)
                    if backend == .blas {
                        let err = zip(cq.array(), cf.array()).map { abs($0 - $1) }.maxOrNaN()!
                        #expect(err < 1e-4, "\(type) blas m=\(m): max difference \(err)")
                    } else if backend == .simd && integer && act != .f32 {
                        // Each activation is off by at most half a step: max |x| of its block / 254
                        // with 8 bits (whose scales are also rounded to half precision, relative
                        // 2^-11), / (127 · 2 · 254²) with 24. (The 24-bit slack is loose: float
                        // rounding of both sides dominates there; its product is checked to float
                        // rounding in integerKernelEqualsItsReference.)
                        let (step, slack, floor) = act == .q8 ? (1.0 / 254, 2e-3, 1e-6) : (1.0 / (127 * 2 * 64516), 4e-6, 1e-7)
                        var bad = 0
                        for r in 0 ..< m {
                            for j in 0 ..< rows {
                                var bound = 0.0, magnitude = 0.0
                                for b in 0 ..< cols / 32 {
                                    let amax = (0 ..< 32).map { abs(Double(av[r * cols + 32 * b + $0])) }.maxOrNaN()!
                                    for p in 32 * b ..< 32 * b + 32 {
                                        bound += abs(Double(values[j * cols + p])) * amax * step
                                        magnitude += abs(Double(values[j * cols + p]) * Double(av[r * cols + p]))
                                    }
                                }
                                if !(abs(Double(cq[r * rows + j]) - Double(cf[r * rows + j])) <= 1.01 * bound + slack * magnitude + floor) { bad += 1 }
                            }
                        }
                        #expect(bad == 0, "\(type) simd \(act) m=\(m) threads=\(threads): \(bad) outputs outside the quantization bound")
                    } else {
                        #expect(cq.array().map(\.bitPattern) == cf.array().map(\.bitPattern), "\(type) \(backend) \(act) m=\(m) threads=\(threads)")
                    }
                }
              }
            }
        }
    }

    /// The integer kernels of this build (AVX-512 VNNI, AVX2 or portable C), on 8-bit and 24-bit
    /// activation blocks, give the plain-C references' results bit for bit: the same exact integer
    /// sums, the same float steps. Row counts cover the 1-row walk, groups of 4 and their rest, and
    /// (130 rows of 256 inputs) more rows than one chunk of 24-bit blocks; 45 and 70 outputs end in
    /// a part panel. The 24-bit blocks hold each value within max|x| / (127 · 2 · 254²) of x, and
    /// the 24-bit product is that of the blocks' values, computed in double from the dequantized
    /// weights, to float rounding (2e-6 of the terms' magnitude): a wrong plane weight or a
    /// dropped plane would be thousands of times that.
    /// The 24-bit quantizer against its definition, worked out here in Swift: d = max |x| / 127 in
    /// float (a NaN passed over), t = x · (1 / d) in double (a NaN counted as 0), then three
    /// planes, each the remainder so far times 254 rounded to nearest even and clamped to ±127; the
    /// planes' sums, and s = d · (S1 + (S2 · 254 + S3) / 254²) in double. Bit for bit, on blocks
    /// with zeros, tiny and large values, a NaN and infinities: the SIMD quantizer (8 values at a
    /// time) has no latitude, whatever the build.
    @Test func quantizeQ24MatchesItsDefinition() {
        var rng = RNG(s: 99)
        let k = 32 * 96
        var x = (0 ..< k).map { _ in rng.float() }
        for i in 0 ..< k {
            switch rng.next() % 8 {
            case 0: x[i] *= 1e-30
            case 1: x[i] *= 3e4
            case 2: x[i] = 0
            case 3: x[i] = Float(Int(rng.next() % 255) - 127) / 127   // on a plane's grid
            default: break
            }
        }
        x[5] = .nan; x[40] = -.infinity; x[77] = .infinity
        for i in 128 ..< 160 { x[i] = 0 }
        for i in 160 ..< 192 { x[i] = 1e-40 * Float(i - 175) }   // subnormal
        var blocks = [strata_q24_block](repeating: strata_q24_block(), count: k / 32)
        x.withUnsafeBufferPointer { strata_quantize_q24($0.baseAddress!, Int32(k), &blocks) }
        var mismatches: [String] = []
        for (b, blk) in blocks.enumerated() {
            let v = x[32 * b ..< 32 * b + 32]
            let amax = v.reduce(Float(0)) { $1.isNaN ? $0 : max($0, abs($1)) }
            let d = amax / 127
            let id = d > 0 ? 1 / Double(d) : 0
            var planes = [[Int8]](repeating: [], count: 3), sums = [Int32](repeating: 0, count: 3)
            for value in v {
                var t = Double(value) * id
                if t.isNaN { t = 0 }
                for p in 0 ..< 3 {
                    let q = min(max(t.rounded(.toNearestOrEven), -127), 127)
                    planes[p].append(Int8(q))
                    sums[p] += Int32(q)
                    t = (t - q) * 254
                }
            }
            let want = Float(Double(d) * (Double(sums[0]) + (Double(sums[1]) * 254 + Double(sums[2])) / 64516))
            let got = withUnsafeBytes(of: blk.q) { Array($0.bindMemory(to: Int8.self)) }
            let gotSums = withUnsafeBytes(of: blk.sum) { Array($0.bindMemory(to: Int32.self)) }
            if blk.d.bitPattern != d.bitPattern || blk.s.bitPattern != want.bitPattern || got != planes.flatMap({ $0 })
                || gotSums != sums || blk.pad != 0 {
                mismatches.append("block \(b): d \(blk.d) vs \(d), s \(blk.s) vs \(want), sums \(gotSums) vs \(sums)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) blocks differ: \(mismatches.prefix(3))")
    }

    @Test(arguments: [GGMLType.q4_0, .q4_1, .q8_0])
    func integerKernelEqualsItsReference(type: GGMLType) {
        let t = Int32(type.rawValue)
        for (rows, cols) in [(45, 96), (16, 32), (70, 256)] {
            let bytes = Self.randomBlocks(type, rows: rows, cols: cols, seed: 3 + UInt64(rows))
            let w = Self.dequantize(type, bytes, count: rows * cols)
            // Q4_1's per-block minimum m (the kernel adds m · s apart from d · Σ q · x).
            let minimum: (Int, Int) -> Double = { j, b in
                guard type == .q4_1 else { return 0 }
                let o = (j * cols / 32 + b) * 20 + 2
                return Double(Float(Float16(bitPattern: UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8)))
            }
            let rowBytes = cols / 32 * type.blockLayout.bytes
            let panels = (rows + 15) / 16, pb = strata_ipanel_bytes(t, Int32(cols))
            var packed = [UInt8](repeating: 0, count: panels * pb)
            packed.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { src in
                for pn in 0 ..< panels {
                    strata_ipanel_pack(t, src.baseAddress! + pn * 16 * rowBytes, rowBytes, Int32(min(16, rows - pn * 16)), Int32(cols),
                                       dst.baseAddress! + pn * pb)
                }
            } }
            for m in [1, 2, 3, 4, 5, 8, 13, 130] {
                var rng = RNG(s: UInt64(m + rows))
                let a = (0 ..< m * cols).map { _ in rng.float() * (rng.next() % 3 == 0 ? 50 : 1) }
                var q24 = [strata_q24_block](repeating: strata_q24_block(), count: m * cols / 32)
                for r in 0 ..< m { a.withUnsafeBufferPointer { strata_quantize_q24($0.baseAddress! + r * cols, Int32(cols), &q24[r * cols / 32]) } }
                // The blocks' values, d · (q1 + q2/254 + q3/254²), in double, row after row.
                var xt = [Double](repeating: 0, count: m * cols)
                var worst = 0.0
                for (i, blk) in q24.enumerated() {
                    let planes = withUnsafeBytes(of: blk.q) { Array($0.bindMemory(to: Int8.self)) }
                    let amax = (0 ..< 32).map { abs(Double(a[32 * i + $0])) }.maxOrNaN()!
                    for v in 0 ..< 32 {
                        xt[32 * i + v] = Double(blk.d) * (Double(planes[v]) + Double(planes[32 + v]) / 254 + Double(planes[64 + v]) / 64516)
                        worst = worse(worst, abs(xt[32 * i + v] - Double(a[32 * i + v])) / amax)
                    }
                }
                #expect(worst <= 1.0 / (127 * 2 * 64516) * 1.001, "24-bit blocks off by \(worst) of max |x|")
                var d1 = [Float](repeating: 1, count: m * rows), d2 = d1
                packed.withUnsafeBytes { p in
                    strata_igemm24(t, p.baseAddress!, Int32(cols), Int32(rows), 0, Int32(panels), q24, Int32(cols / 32), Int32(m), &d1, Int32(rows), 1)
                    strata_igemm24_ref(t, p.baseAddress!, Int32(cols), Int32(rows), 0, Int32(panels), q24, Int32(cols / 32), Int32(m), &d2, Int32(rows), 1)
                }
                #expect(d1.map(\.bitPattern) == d2.map(\.bitPattern), "q24 \(type) [\(rows)×\(cols)] m=\(m)")
                var off = 0
                for r in 0 ..< m {
                    for j in 0 ..< rows {
                        var want = 1.0, magnitude = 1.0
                        for p in 0 ..< cols {
                            let x = xt[r * cols + p]
                            want += Double(w[j * cols + p]) * x
                            magnitude += abs(Double(w[j * cols + p]) * x) + 2 * abs(minimum(j, p / 32) * x)
                        }
                        if !(abs(Double(d1[r * rows + j]) - want) <= 2e-6 * magnitude) { off += 1 }
                    }
                }
                #expect(off == 0, "q24 \(type) [\(rows)×\(cols)] m=\(m): \(off) outputs off the 24-bit blocks' exact product")
                var q8 = [strata_q8_block](repeating: strata_q8_block(), count: m * cols / 32)
                for r in 0 ..< m { a.withUnsafeBufferPointer { strata_quantize_q8($0.baseAddress! + r * cols, Int32(cols), &q8[r * cols / 32]) } }
                var c1 = [Float](repeating: 1, count: m * rows), c2 = c1
                packed.withUnsafeBytes { p in
                    strata_igemm(t, p.baseAddress!, Int32(cols), Int32(rows), 0, Int32(panels), q8, Int32(cols / 32), Int32(m), &c1, Int32(rows), 1)
                    strata_igemm_ref(t, p.baseAddress!, Int32(cols), Int32(rows), 0, Int32(panels), q8, Int32(cols / 32), Int32(m), &c2, Int32(rows), 1)
                }
                #expect(c1.map(\.bitPattern) == c2.map(\.bitPattern), "\(type) [\(rows)×\(cols)] m=\(m)")
            }
        }
    }

    /// A row's result does not depend on how many rows share the step, on the unpacked-panel
    /// kernels (fused for up to four rows, a shared panel for more) and on the integer kernels.
    /// (88 outputs: six 16-wide panels, the last one part-filled, so that the single row's
    /// two-panel walk takes a part-filled second panel on one thread and lone panels on two.)
    @Test(arguments: [(GGMLType.q4_K, ActivationMode.f32), (.q4_1, .f32), (.q8_0, .f32), (.q4_0, .f32), (.q4_1, .q8), (.q8_0, .q8), (.q4_0, .q8),
                      (.q4_1, .q24), (.q8_0, .q24), (.q4_0, .q24)])
    func rowsAreIndependentOfTheBatch(type: GGMLType, activations: ActivationMode) {
        let cols = 256, rows = 88
        let q = WeightMatrix(name: "w", type: type, rows: rows, cols: cols, blocks: Self.randomBlocks(type, rows: rows, cols: cols, seed: 5))
        let packed = PackedMatrix(q, activations: activations)
        #expect(packed.isInteger == activations.isInteger)
        var rng = RNG(s: 11)
        let a = (0 ..< 20 * cols).map { _ in rng.float() }
        for threads in [1, 2] {
            let all = FloatBuffer(count: 20 * rows)
            Kernels.matmul(a: FloatBuffer(a), packed: packed, c: all, m: 20, threads: threads)
            for r in [0, 7, 19] {
                let one = FloatBuffer(count: rows)
                Kernels.matmul(a: FloatBuffer(Array(a[r * cols ..< (r + 1) * cols])), packed: packed, c: one, m: 1, threads: 3 - threads)
                #expect(one.array().map(\.bitPattern) == all.array(r * rows ..< (r + 1) * rows).map(\.bitPattern), "\(type) row \(r)")
            }
        }
    }

    /// One row against two panels at once (`strata_qpanel_row_pair`, the 1-row path of the float
    /// kernels) gives each panel's outputs bit for bit as the one-panel walk does, for both panel
    /// widths whatever the build (16: AVX2 and NEON; 32: AVX-512), the second panel part-filled;
    /// a type without the pair walk is refused and nothing is written.
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q8_0, .q4_K])
    func rowPairEqualsTwoSingleRows(type: GGMLType) {
        let t = Int32(type.rawValue)
        let cols = type == .q4_K ? 512 : 160
        for width in [16, 32] {
            let rows = 2 * width - 5
            let bytes = Self.randomBlocks(type, rows: rows, cols: cols, seed: 21 + UInt64(width))
            let rowBytes = cols / type.blockLayout.elements * type.blockLayout.bytes
            let pb = cols / Int(strata_qpanel_block_values(t)) * Int(strata_qpanel_block_bytes(t, Int32(width)))
            var packed = [UInt8](repeating: 0, count: 2 * pb)
            packed.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { src in
                for pn in 0 ..< 2 {
                    strata_qpanel_pack(t, src.baseAddress! + pn * width * rowBytes, rowBytes, Int32(min(width, rows - pn * width)), Int32(cols),
                                       Int32(width), dst.baseAddress! + pn * pb)
                }
            } }
            var rng = RNG(s: 77)
            let a = (0 ..< cols).map { _ in rng.float() * (rng.next() % 5 == 0 ? 20 : 1) }
            for accumulate: Int32 in [0, 1] {
                var one = (0 ..< 2 * width).map { Float($0) }, pair = one
                packed.withUnsafeBytes { p in
                    for pn in 0 ..< 2 {
                        strata_qpanel_rows(t, p.baseAddress! + pn * pb, Int32(cols), Int32(width), a, Int32(cols), 1, &one[pn * width],
                                           Int32(2 * width), Int32(min(width, rows - pn * width)), accumulate)
                    }
                    let done = strata_qpanel_row_pair(t, p.baseAddress!, pb, Int32(cols), Int32(width), a, &pair, Int32(rows - width), accumulate)
                    #expect(done == (type == .q4_K ? 0 : 1), "\(type) width \(width)")
                }
                if type == .q4_K {
                    #expect(pair == (0 ..< 2 * width).map { Float($0) }, "a refused pair writes nothing")
                } else {
                    #expect(one.map(\.bitPattern) == pair.map(\.bitPattern), "\(type) width \(width) accumulate \(accumulate)")
                }
            }
        }
    }

    // MARK: - Dequantization against references

    /// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16, F16 written by the `gguf` package's quantizer, against
    /// its own dequantization (the Python reference), through `Dequantize` and the panels.
    @Test func ggufPackageQuantizersRoundTrip() throws {
        let env = ProcessInfo.processInfo.environment
        guard let python = env["STRATA_PYTHON"], !python.isEmpty else {
            Issue.record("STRATA_PYTHON is not set: run through `make test`, which makes a venv with the gguf package")
            return
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/gguf_quantize.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script, "11"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        let names: [String: GGMLType] = ["Q4_0": .q4_0, "Q4_1": .q4_1, "Q5_0": .q5_0, "Q5_1": .q5_1, "Q8_0": .q8_0, "BF16": .bf16, "F16": .f16]
        #expect(Set(json.keys) == Set(names.keys))
        for (name, type) in names {
            let e = try #require(json[name])
            let rows = e["rows"] as! Int, cols = e["cols"] as! Int
            let hex = e["bytes"] as! String
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex { let j = hex.index(i, offsetBy: 2); bytes.append(UInt8(hex[i ..< j], radix: 16)!); i = j }
            let want = (e["values"] as! [Double]).map(Float.init)
            let got = Self.dequantize(type, bytes, count: rows * cols)
            #expect(got == want, "\(name): Dequantize differs from the gguf package")
            // Through a quantized matrix: x · Wᵀ with x = e_p picks column p of every row: exactly
            // with float activations; on the integer kernels (q8) within the half-precision
            // rounding of the activation scale (1/127).
            let w = WeightMatrix(name: name, type: type, rows: rows, cols: cols, blocks: bytes)
            let eye = FloatBuffer(count: cols * cols)
            for p in 0 ..< cols { eye[p * cols + p] = 1 }
            let out = FloatBuffer(count: cols * rows)
            Kernels.matmul(.simd, a: eye, weight: w, c: out, m: cols)
            var bad = 0
            for p in 0 ..< cols { for r in 0 ..< rows where out[p * rows + r] != want[r * cols + p] { bad += 1 } }
            #expect(bad == 0, "\(name): \(bad) values differ through the simd kernel")
            if [.q4_0, .q4_1, .q8_0].contains(type) {
                // 24-bit blocks hold 1 exactly (127 · (1/127)): within float rounding of the value.
                Kernels.matmul(.simd, a: eye, weight: w, c: out, m: cols, activations: .q24)
                bad = 0
                let top = want.map(abs).maxOrNaN()!
                for p in 0 ..< cols { for r in 0 ..< rows where !(abs(out[p * rows + r] - want[r * cols + p]) <= 1e-6 * abs(want[r * cols + p]) + 1e-7 * top) { bad += 1 } }
                #expect(bad == 0, "\(name): \(bad) values differ through the 24-bit integer kernel")
                Kernels.matmul(.simd, a: eye, weight: w, c: out, m: cols, activations: .q8)
                bad = 0
                // q·d and the minimum may nearly cancel: the error is relative to the terms' size.
                let scale = want.map(abs).maxOrNaN()!
                for p in 0 ..< cols { for r in 0 ..< rows where !(abs(out[p * rows + r] - want[r * cols + p]) <= 1e-3 * abs(want[r * cols + p]) + 2e-4 * scale) { bad += 1 } }
                #expect(bad == 0, "\(name): \(bad) values differ through the integer kernel")
            }
        }
    }

    /// K-quant blocks built by hand from the format's description, with every value derived by
    /// hand: y = d · scale · q − dmin · min (Q2_K, Q4_K, Q5_K), d · (scale − 32) · q (Q3_K),
    /// d · scale · (q − 32) (Q6_K).
    @Test func handBuiltKQuantBlocks() {
        let d: Float = 0.5, dmin: Float = 0.25
        func half(_ f: Float) -> [UInt8] { let h = Float16(f).bitPattern; return [UInt8(h & 0xFF), UInt8(h >> 8)] }
        // Value v's integer and its sub-block's scale and min, chosen to exercise every bit.
        func qv(_ v: Int, _ bits: Int) -> Int { (v * 7 + v / 5) % (1 << bits) }

        // Q2_K: scales[16] (low nibble scale, high nibble min), qs[64]: value v = 128n + 32j + 16h + l
        // is bits 2j..2j+1 of qs[32n + 16h + l]; then d, dmin.
        var q2 = [UInt8](repeating: 0, count: 84)
        for s in 0 ..< 16 { q2[s] = UInt8((s % 15 + 1) | ((s * 3) % 16) << 4) }
        for v in 0 ..< 256 {
            let n = v / 128, j = (v % 128) / 32, h = (v % 32) / 16, l = v % 16
            q2[16 + 32 * n + 16 * h + l] |= UInt8(qv(v, 2) << (2 * j))
        }
        q2.replaceSubrange(80 ..< 84, with: half(d) + half(dmin))
        let y2 = Self.dequantize(.q2_K, q2, count: 256)
        for v in 0 ..< 256 {
            let s = v / 16
            let want = d * Float(s % 15 + 1) * Float(qv(v, 2)) - dmin * Float((s * 3) % 16)
            #expect(abs(y2[v] - want) <= 1e-6, "Q2_K[\(v)] \(y2[v]) vs \(want)")
        }

        // Q4_K and Q5_K: d, dmin, 12 bytes of 6-bit scales and mins (sub-blocks 0-3 in the low 6
        // bits of bytes 0-3 / 4-7; 4-7 split: low 4 bits in bytes 8-11, high 2 bits in the top
        // bits of bytes 0-3 / 4-7), [qh 32 bytes], qs 128: value v = 64t + 32h + l is the low
        // (h = 0) or high nibble of qs[32t + l]; its fifth bit is bit 2t + h of qh[l].
        for five in [false, true] {
            var b = [UInt8](repeating: 0, count: five ? 176 : 144)
            b.replaceSubrange(0 ..< 4, with: half(d) + half(dmin))
            let sc = (0 ..< 8).map { ($0 * 9 + 5) % 64 }, mn = (0 ..< 8).map { ($0 * 13 + 2) % 64 }
            for j in 0 ..< 4 {
                b[4 + j] = UInt8(sc[j] | (sc[j + 4] >> 4) << 6)
                b[8 + j] = UInt8(mn[j] | (mn[j + 4] >> 4) << 6)
                b[12 + j] = UInt8((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4)
            }
            let qs = five ? 48 : 16
            for v in 0 ..< 256 {
                let t = v / 64, h = (v % 64) / 32, l = v % 32, q = qv(v, five ? 5 : 4)
                b[qs + 32 * t + l] |= UInt8((q & 15) << (4 * h))
                if five && q >= 16 { b[16 + l] |= UInt8(1 << (2 * t + h)) }
            }
            let y = Self.dequantize(five ? .q5_K : .q4_K, b, count: 256)
            for v in 0 ..< 256 {
                let s = v / 32
                let want = d * Float(sc[s]) * Float(qv(v, five ? 5 : 4)) - dmin * Float(mn[s])
                #expect(abs(y[v] - want) <= 1e-5, "\(five ? "Q5_K" : "Q4_K")[\(v)] \(y[v]) vs \(want)")
            }
        }

        // Q3_K: hmask[32] (bit 4n + j of hmask[16h + l]: set = no −4), qs[64] (2 bits as Q2_K),
        // scales[12] (6-bit, minus 32: low 4 bits of scale s in byte s (s < 8, low nibble) or byte
        // s − 8 (high nibble); high 2 bits in byte 8 + s % 4 at bits 2·(s / 4)), d.
        var q3 = [UInt8](repeating: 0, count: 110)
        let s3 = (0 ..< 16).map { ($0 * 11 + 3) % 64 }
        for s in 0 ..< 16 {
            if s < 8 { q3[96 + s] |= UInt8(s3[s] & 15) } else { q3[96 + s - 8] |= UInt8((s3[s] & 15) << 4) }
            q3[96 + 8 + s % 4] |= UInt8((s3[s] >> 4) << (2 * (s / 4)))
        }
        for v in 0 ..< 256 {
            let n = v / 128, j = (v % 128) / 32, h = (v % 32) / 16, l = v % 16
            let q = qv(v, 3)   // 0...7 stands for q − 4: low two bits, high bit set when q ≥ 4
            q3[32 + 32 * n + 16 * h + l] |= UInt8((q & 3) << (2 * j))
            if q >= 4 { q3[16 * h + l] |= UInt8(1 << (4 * n + j)) }
        }
        q3.replaceSubrange(108 ..< 110, with: half(d))
        let y3 = Self.dequantize(.q3_K, q3, count: 256)
        for v in 0 ..< 256 {
            let q = qv(v, 3), want = d * Float(s3[v / 16] - 32) * Float((q & 3) - (q >= 4 ? 0 : 4))
            #expect(abs(y3[v] - want) <= 1e-6, "Q3_K[\(v)] \(y3[v]) vs \(want)")
        }

        // Q6_K: ql[128] (value n·128 + 32·quarter + l: low nibble of ql[64n + l + 32·(quarter & 1)]
        // for quarters 0, 1, high nibble for 2, 3), qh[64] (bits 2·quarter of qh[32n + l]),
        // scales[16] (int8, one per 16 values), d.
        var q6 = [UInt8](repeating: 0, count: 210)
        let s6 = (0 ..< 16).map { Int8(($0 * 37) % 256 - 128) }
        for s in 0 ..< 16 { q6[192 + s] = UInt8(bitPattern: s6[s]) }
        for v in 0 ..< 256 {
            let n = v / 128, quarter = (v % 128) / 32, l = v % 32, q = qv(v, 6)
            q6[64 * n + l + 32 * (quarter & 1)] |= UInt8((q & 15) << (quarter >= 2 ? 4 : 0))
            q6[128 + 32 * n + l] |= UInt8((q >> 4) << (2 * quarter))
        }
        q6.replaceSubrange(208 ..< 210, with: half(d))
        let y6 = Self.dequantize(.q6_K, q6, count: 256)
        for v in 0 ..< 256 {
            let want = d * Float(s6[v / 16]) * Float(qv(v, 6) - 32)
            #expect(abs(y6[v] - want) <= 1e-5, "Q6_K[\(v)] \(y6[v]) vs \(want)")
        }
    }

    /// Samples of a real Q4_K_M file (Gemma 3 270M: Q8_0, Q5_0, Q4_K, Q6_K, F32) against the
    /// `gguf` package's dequantization (`../shared/fixtures/gemma3/dequant.json`).
    @Test func gemmaTensorsMatchTheGGUFPackage() throws {
        let env = ProcessInfo.processInfo.environment
        let path = env["STRATA_GEMMA"].flatMap { $0.isEmpty ? nil : $0 } ?? (Model.defaultModelPath as NSString)
            .deletingLastPathComponent + "/gemma-3-270m-q4_k_m.gguf"
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("Gemma 3 270M is missing at \(path): run `make gemma` (make test does this)")
            return
        }
        let file = try GGUFFile(path: path)
        let fixture = (RealModel.fixtures as NSString).deletingLastPathComponent + "/gemma3/dequant.json"
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture))) as? [[String: Any]])
        var types = Set<GGMLType>()
        for e in entries {
            let name = e["name"] as! String
            let info = try #require(file.tensorInfo(name), "\(name) not in the file")
            #expect("\(info.type)" == e["type"] as! String)
            types.insert(info.type)
            var out = [Float](repeating: .nan, count: info.elementCount)
            file.withTensorBytes(info) { raw in out.withUnsafeMutableBufferPointer { Dequantize.run(info.type, src: raw, count: info.elementCount, into: $0) } }
            for s in e["samples"] as! [[Double]] {
                let i = Int(s[0])
                #expect(abs(Double(out[i]) - s[1]) <= 1e-6 * max(1, abs(s[1])), "\(name)[\(i)] \(out[i]) vs \(s[1])")
            }
            let sum = out.reduce(0.0) { $0 + Double($1) }, sumsq = out.reduce(0.0) { $0 + Double($1) * Double($1) }
            let wantSum = e["sum"] as! Double, wantSq = e["sumsq"] as! Double
            #expect(abs(sum - wantSum) <= 1e-6 * max(1, wantSq), "\(name) sum \(sum) vs \(wantSum)")
            #expect(abs(sumsq - wantSq) <= 1e-6 * wantSq, "\(name) sum of squares \(sumsq) vs \(wantSq)")
            // The panels of a matrix unpack to the same values.
            if info.dims.count == 2 && info.type != .f32 {
                let rows = min(info.dims[1], 40), cols = info.dims[0]
                let rowBytes = cols / info.type.blockLayout.elements * info.type.blockLayout.bytes
                let w = WeightMatrix(name: name, info: info, rows: rows, cols: cols, file: file)
                let packed = PackedMatrix(w)
                for pn in 0 ..< packed.panels {
                    let panel = Kernels.unpackPanel(packed, panel: pn)
                    let nr = PackedMatrix.width
                    for j in 0 ..< min(nr, rows - pn * nr) {
                        for p in stride(from: 0, to: cols, by: 7) where panel[p * nr + j] != out[(pn * nr + j) * cols + p] {
                            Issue.record("\(name) panel \(pn) row \(j) col \(p)"); break
                        }
                    }
                }
                _ = rowBytes
            }
        }
        #expect(types.isSuperset(of: [.q8_0, .q5_0, .q4_K, .q6_K]), "types covered: \(types)")
    }
}

@Suite struct QuantLoadTests {
    /// A matrix of a type Strata has no kernels for (IQ4_NL) fails the load, in both weight modes,
    /// with an error naming the tensor and the type.
    @Test(arguments: WeightsMode.allCases)
    func anUnsupportedTypeFailsTheLoadNamingIt(mode: WeightsMode) throws {
        var w = TinyModel().writer()
        let i = try #require(w.tensors.firstIndex { $0.name == "blk.1.ffn_up.weight" })
        let dims = w.tensors[i].dims
        w.tensors[i] = (name: "blk.1.ffn_up.weight", dims: dims, type: GGMLType.iq4_nl.rawValue,
                        data: [UInt8](repeating: 0x11, count: dims.reduce(1, *) / 32 * 18))
        let path = try w.write(name: "iq4nl")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Model(path: path, weights: mode)
            Issue.record("an IQ4_NL matrix loaded")
        } catch {
            let text = "\(error)"
            #expect(text.contains("blk.1.ffn_up.weight") && text.contains("IQ4_NL"), "\(text)")
        }
    }
}
