import Foundation
import Testing
@testable import Strata

@Suite struct KernelTests {
    /// Reference GEMM in Double.
    func reference(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transB: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0 ..< m { for j in 0 ..< n { for p in 0 ..< k {
            c[i * n + j] += Double(a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
        } } }
        return c
    }

    @Test(arguments: [(1, 7, 5), (3, 16, 33), (17, 9, 64), (64, 48, 40)])
    func gemmBackendsAgreeWithReference(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = TestRNG(seed: UInt64(m * 1000 + n))
        let a = rng.floats(m * k), bt = rng.floats(n * k), bn = rng.floats(k * n), c0 = rng.floats(m * n)
        for backend in Backend.allCases {
            for transB in [true, false] {
                for accumulate in [false, true] {
                    let A = buffer(a), B = buffer(transB ? bt : bn), C = buffer(c0)
                    GEMM.run(backend, a: A.matrix(rows: m, cols: k),
                             b: transB ? B.matrix(rows: n, cols: k) : B.matrix(rows: k, cols: n),
                             c: C.matrix(rows: m, cols: n), transB: transB, accumulate: accumulate)
                    let ref = reference(a, transB ? bt : bn, m: m, n: n, k: k, transB: transB)
                    for i in 0 ..< m * n {
                        let want = ref[i] + (accumulate ? Double(c0[i]) : 0)
                        #expect(abs(Double(C[i]) - want) <= 1e-4 * Double(k), "\(backend) transB=\(transB) acc=\(accumulate) [\(i)]")
                    }
                }
            }
        }
    }

    /// The half-precision cache's widening: every one of the 65,536 half values (normals,
    /// subnormals, ±0, ±∞, NaNs) read one at a time (the portable conversion) and eight and
    /// sixteen at a time (F16C where the build has it) gives the float Swift's own conversion gives.
    @Test func halfPrecisionWideningIsExact() {
        let all = (0 ... 0xffff).map { Float16(bitPattern: UInt16($0)) }
        func same(_ a: Float, _ b: Float) -> Bool { a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern }
        all.withUnsafeBufferPointer { p in
            var bad = 0
            for i in 0 ..< all.count where !same(all[i].float, Float(all[i])) { bad += 1 }
            for i in stride(from: 0, to: all.count, by: 8) {
                let v = Float16.load8(p.baseAddress! + i)
                for j in 0 ..< 8 where !same(v[j], Float(all[i + j])) { bad += 1 }
            }
            for i in stride(from: 0, to: all.count, by: PVec.scalarCount) {
                let v = Float16.loadVec(p.baseAddress! + i)
                for j in 0 ..< PVec.scalarCount where !same(v[j], Float(all[i + j])) { bad += 1 }
            }
            #expect(bad == 0, "\(bad) half values widened wrongly")
        }
        // And storing rounds to nearest: 1 + 2⁻¹¹ is a tie, kept even (1); just above goes up.
        #expect(Float16(Float(1) + 0x1p-11) == 1 && Float16(Float(1) + 0x1.2p-11) == Float16(1).nextUp)
    }

    @Test func gemmOnStridedViews() {
        // A head's slice of a wider row: 3 rows × 4 cols inside rows of 10.
        var rng = TestRNG(seed: 9)
        let wide = rng.floats(30), b = rng.floats(5 * 4)
        for backend in Backend.allCases {
            let A = buffer(wide), B = buffer(b), C = FloatBuffer(count: 3 * 8)
            GEMM.run(backend, a: A.matrix(offset: 2, rows: 3, cols: 4, stride: 10), b: B.matrix(rows: 5, cols: 4),
                     c: C.matrix(offset: 1, rows: 3, cols: 5, stride: 8), transB: true)
            for i in 0 ..< 3 { for j in 0 ..< 5 {
                var s: Float = 0
                for p in 0 ..< 4 { s += wide[i * 10 + 2 + p] * b[j * 4 + p] }
                #expect(abs(C[1 + i * 8 + j] - s) < 1e-5)
            } }
            #expect(C[0] == 0 && C[6] == 0)   // outside the view untouched
        }
    }

    @Test func causalSoftmaxIsFusedAndExact() {
        var rng = TestRNG(seed: 1)
        let rows = 4, cols = 7, first = 4, scale: Float = 0.125
        let raw = rng.floats(rows * cols, scale: 30)
        let s = buffer(raw)
        Ops.causalSoftmax(scores: s.matrix(rows: rows, cols: cols), scale: scale, firstVisible: first)
        for r in 0 ..< rows {
            let visible = first + r
            let row = (0 ..< visible).map { Double(raw[r * cols + $0] * scale) }
            let mx = row.max()!
            let z = row.map { exp($0 - mx) }.reduce(0, +)
            for j in 0 ..< cols {
                let want = j < visible ? exp(row[j] - mx) / z : 0
                #expect(abs(Double(s[r * cols + j]) - want) < 1e-6)
            }
        }
        // Large logits do not overflow (the row max is subtracted).
        let big = buffer([1000, 1001, 999])
        Ops.causalSoftmax(scores: big.matrix(rows: 1, cols: 3), scale: 1, firstVisible: 3)
        #expect(big.array().allSatisfy { $0.isFinite } && abs(big.array().reduce(0, +) - 1) < 1e-6)
    }

    @Test func rmsNormMatchesDefinition() {
        var rng = TestRNG(seed: 2)
        let x = rng.floats(2 * 8), w = rng.floats(8)
        let y = FloatBuffer(count: 16), xb = buffer(x), wb = buffer(w)
        Ops.rmsNorm(x: xb.matrix(rows: 2, cols: 8), weight: wb, eps: 1e-5, y: y.matrix(rows: 2, cols: 8))
        withExtendedLifetime(xb) {}
        for r in 0 ..< 2 {
            let ms = (0 ..< 8).map { Double(x[r * 8 + $0]) * Double(x[r * 8 + $0]) }.reduce(0, +) / 8
            for i in 0 ..< 8 { #expect(abs(Double(y[r * 8 + i]) - Double(x[r * 8 + i]) / (ms + 1e-5).squareRoot() * Double(w[i])) < 1e-5) }
        }
    }

    @Test func ropeRotatesPairsByPosition() {
        // Two heads of 4 dims, positions 0 and 3, base 100.
        let table = RopeTable(positions: 8, ropeDim: 4, base: 100, style: .normal)
        var rng = TestRNG(seed: 4)
        let x = rng.floats(16)
        let b = buffer(x)
        let pos: [Int32] = [0, 3]
        Ops.rope(x: b.matrix(rows: 2, cols: 8), heads: 2, headDim: 4, positions: pos, table: table)
        for r in 0 ..< 2 { for h in 0 ..< 2 { for i in 0 ..< 2 {
            let theta = Double(pos[r]) * pow(100, -2.0 * Double(i) / 4)
            let a = Double(x[r * 8 + h * 4 + 2 * i]), c = Double(x[r * 8 + h * 4 + 2 * i + 1])
            #expect(abs(Double(b[r * 8 + h * 4 + 2 * i]) - (a * cos(theta) - c * sin(theta))) < 1e-5)
            #expect(abs(Double(b[r * 8 + h * 4 + 2 * i + 1]) - (a * sin(theta) + c * cos(theta))) < 1e-5)
        } } }
        // NeoX pairs (i, i + 2).
        let neox = RopeTable(positions: 8, ropeDim: 4, base: 100, style: .neox)
        let n = buffer(Array(x[0 ..< 4]))
        let p: [Int32] = [5]
        Ops.rope(x: n.matrix(rows: 1, cols: 4), heads: 1, headDim: 4, positions: p, table: neox)
        for i in 0 ..< 2 {
            let theta = 5 * pow(100, -2.0 * Double(i) / 4)
            #expect(abs(Double(n[i]) - (Double(x[i]) * cos(theta) - Double(x[i + 2]) * sin(theta))) < 1e-5)
        }
    }

    @Test func swigluMatchesDefinition() {
        let g = buffer([-2, 0, 1, 3]), u = buffer([1, 2, 3, 4])
        Ops.swiglu(gate: g.matrix(rows: 1, cols: 4), up: u.matrix(rows: 1, cols: 4))
        for (i, (x, v)) in zip([-2.0, 0, 1, 3], [1.0, 2, 3, 4]).enumerated() {
            #expect(abs(Double(g[i]) - x / (1 + exp(-x)) * v) < 1e-6)
        }
    }
}
