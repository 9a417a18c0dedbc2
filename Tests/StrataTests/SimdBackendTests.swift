import Dispatch
import Foundation
import Synchronization
import Testing
@testable import Strata

/// The `simd` backend: packed GEMM, its thread pool, the fused attention with the transposed key
/// cache, and the property that a row's result does not depend on the rest of the batch.
@Suite struct SimdBackendTests {
    /// `A · Wᵀ` with the packed kernel, on `threads` threads.
    func packedProduct(_ a: [Float], _ w: PackedMatrix, m: Int, threads: Int, c0: [Float]? = nil) -> [Float] {
        let A = buffer(a), C = c0.map(buffer) ?? FloatBuffer(count: m * w.rows)
        PackedGEMM.parallel(a: A.matrix(rows: m, cols: w.cols), w: w, c: C.matrix(rows: m, cols: w.rows),
                            accumulate: c0 != nil, threads: threads)
        return C.array()
    }

    @Test(arguments: [(1, 1, 1), (2, 31, 5), (3, 32, 64), (5, 33, 100), (8, 64, 17), (9, 70, 64), (13, 96, 33),
                      (16, 200, 48), (17, 47, 129), (33, 65, 20)])
    func packedGEMMMatchesTheReference(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = TestRNG(seed: UInt64(m * 7919 + n * 31 + k))
        let a = rng.floats(m * k), wt = rng.floats(n * k), c0 = rng.floats(m * n)
        let W = PackedMatrix(buffer(wt), rows: n, cols: k)
        #expect(W.panels == (n + PackedMatrix.width - 1) / PackedMatrix.width)
        for accumulate in [false, true] {
            let c = packedProduct(a, W, m: m, threads: 2, c0: accumulate ? c0 : nil)
            for i in 0 ..< m { for j in 0 ..< n {
                var want = accumulate ? Double(c0[i * n + j]) : 0
                for p in 0 ..< k { want += Double(a[i * k + p]) * Double(wt[j * k + p]) }
                #expect(abs(Double(c[i * n + j]) - want) <= 1e-5 * Double(k + 1), "[\(i), \(j)] accumulate=\(accumulate)")
            } }
        }
    }

    @Test func aRowsResultDoesNotDependOnTheBatchOrTheThreads() {
        var rng = TestRNG(seed: 77)
        let m = 21, n = 100, k = 96
        let a = rng.floats(m * k), W = PackedMatrix(buffer(rng.floats(n * k)), rows: n, cols: k)
        let all = packedProduct(a, W, m: m, threads: 2)
        #expect(packedProduct(a, W, m: m, threads: 1) == all)
        // Each row alone (the matrix-vector kernel), and blocks of rows that go through the other
        // kernels in other groupings: 13 rows (8 + 4 + 1 with AVX-512, 6 + 6 + 1 with AVX2) and
        // 10 rows (8 + 1 + 1, or 6 + 4): bit for bit the rows of the full product.
        for i in 0 ..< m {
            #expect(packedProduct(Array(a[i * k ..< (i + 1) * k]), W, m: 1, threads: 2) == Array(all[i * n ..< (i + 1) * n]), "row \(i)")
        }
        #expect(packedProduct(Array(a[5 * k ..< 18 * k]), W, m: 13, threads: 1) == Array(all[5 * n ..< 18 * n]))
        #expect(packedProduct(Array(a[3 * k ..< 13 * k]), W, m: 10, threads: 2) == Array(all[3 * n ..< 13 * n]))
    }

    @Test func gemmEntryPointPacksEitherLayout() {
        // GEMM.run(.simd) packs B itself, from [n × k] (transB) or [k × n].
        var rng = TestRNG(seed: 5)
        let m = 6, n = 40, k = 24
        let a = rng.floats(m * k), bt = rng.floats(n * k)
        var bn = [Float](repeating: 0, count: k * n)
        for j in 0 ..< n { for p in 0 ..< k { bn[p * n + j] = bt[j * k + p] } }
        let A = buffer(a), BT = buffer(bt), BN = buffer(bn)
        let C1 = FloatBuffer(count: m * n), C2 = FloatBuffer(count: m * n)
        withExtendedLifetime((A, BT, BN)) {
            GEMM.run(.simd, a: A.matrix(rows: m, cols: k), b: BT.matrix(rows: n, cols: k), c: C1.matrix(rows: m, cols: n), transB: true)
            GEMM.run(.simd, a: A.matrix(rows: m, cols: k), b: BN.matrix(rows: k, cols: n), c: C2.matrix(rows: m, cols: n), transB: false)
        }
        #expect(C1.array() == C2.array())
        #expect(C1.array().contains { $0 != 0 })
    }

    @Test func poolRunsEveryPartOnceEvenFromTwoThreadsAtOnce() {
        let pool = ThreadPool.shared
        #expect(pool.width >= 1)
        // Per-part run counts, 16 bits each in one atomic (at most 4,000 per part). (An atomic rather
        // than a Mutex: ThreadSanitizer cannot see Synchronization.Mutex's futex on Linux.)
        let counts = Atomic<Int>(0)
        // Two callers at once: regions take turns; every part of every region runs exactly once.
        DispatchQueue.concurrentPerform(iterations: 2) { caller in
            for r in 0 ..< 2000 {
                let parts = 1 + (r + caller) % 4
                let seen = Atomic<Int>(0)
                pool.run(parts: parts) { part, n in
                    #expect(n == min(parts, pool.width) && part < n)
                    seen.add(1 << (4 * part), ordering: .relaxed)
                    counts.add(1 << (16 * part), ordering: .relaxed)
                }
                var want = 0
                for p in 0 ..< min(parts, pool.width) { want += 1 << (4 * p) }
                #expect(seen.load(ordering: .relaxed) == want, "region \(r) of caller \(caller)")
            }
        }
        let packed = counts.load(ordering: .relaxed)
        let total = (0 ..< 4).reduce(0) { $0 + (packed >> (16 * $1)) & 0xffff }
        var want = 0
        for caller in 0 ..< 2 { for r in 0 ..< 2000 { want += min(1 + (r + caller) % 4, pool.width) } }
        #expect(total == want)
    }

    @Test func argmaxIsTheFirstLargest() {
        var rng = TestRNG(seed: 3)
        for n in [1, 2, 7, 8, 15, 16, 17, 100, 1000, 49152] {
            var x = rng.floats(n)
            if n > 3 { x[n / 3] = 5; x[n - 1] = 5 }   // a tie: the first one wins
            let want = x.indices.reduce(0) { x[$1] > x[$0] ? $1 : $0 }
            #expect(x.withUnsafeBufferPointer { SIMDMath.argmax($0.baseAddress!, n) } == want, "n = \(n)")
        }
        let allLow = [Float](repeating: -.infinity, count: 40)
        #expect(allLow.withUnsafeBufferPointer { SIMDMath.argmax($0.baseAddress!, 40) } == 0)
        var nans = [Float](repeating: .nan, count: 40)
        nans[33] = -3
        #expect(nans.withUnsafeBufferPointer { SIMDMath.argmax($0.baseAddress!, 40) } == 33)
    }

    /// Models whose attention takes every path of the fused kernel: three-head passes, a pass
    /// with a repeated head (groups of 2, 4, 5), one head per group, head sizes that are and are
    /// not a multiple of two vector registers, and of exactly four with AVX-512 (head size 64: the
    /// values in one pass), with a group of 3, 4 (a pass of one head three times) and 5 (a pass
    /// whose last head repeats).
    @Test(arguments: [(6, 2, 384), (5, 1, 240), (4, 2, 64), (3, 3, 96), (8, 2, 256), (8, 2, 512), (5, 1, 320)])
    func attentionShapesMatchNaive(shape: (Int, Int, Int)) throws {
        var spec = TinyModel()
        (spec.heads, spec.kvHeads, spec.embd) = shape
        spec.ff = 96
        spec.context = 160
        let model = try spec.load()
        let ids: [Int32] = (0 ..< 70).map { Int32(($0 * 37 + 11) % 280) }
        func run(_ backend: Backend) throws -> (prefill: [Float], decode: [Float]) {
            let ctx = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 100, maxBatchTokens: 64))
            try ctx.prefill(ids)   // two chunks: 64 + 6 rows
            let p = ctx.logits(row: 0)
            var b = Batch(); b.add(slot: 0, token: 7)
            try ctx.evaluate(b)
            return (p, ctx.logits(row: 0))
        }
        let simd = try run(.simd), naive = try run(.naive)
        let d1 = zip(simd.prefill, naive.prefill).map { abs($0 - $1) }.maxOrNaN()!
        let d2 = zip(simd.decode, naive.decode).map { abs($0 - $1) }.maxOrNaN()!
        // Rounding grows with the width and the logits' size (up to ≈ 37 here); BLAS differs from
        // naive by as much (1.7e-4 at 240 dims).
        let scale = max(simd.prefill.map(abs).maxOrNaN()!, simd.decode.map(abs).maxOrNaN()!)
        #expect(d1 <= 2e-5 * scale && d2 <= 2e-5 * scale, "heads \(shape): prefill \(d1), decode \(d2), largest logit \(scale)")
        #expect(simd.decode.contains { $0 != 0 })
    }

    /// The KV cache is not zeroed, and the simd kernel scores a whole key block past the last
    /// visible position: what a slot held before must not reach the next sequence's logits.
    @Test(arguments: Backend.allCases)
    func staleCacheContentsDoNotLeak(backend: Backend) throws {
        let model = ForwardTests.tiny
        let old: [Int32] = (0 ..< 57).map { Int32(($0 * 91 + 5) % 280) }, new: [Int32] = [17, 4, 250, 9, 33]
        let used = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 64))
        try used.prefill(old)
        used.reset(slot: 0)
        try used.prefill(new)
        let fresh = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 64))
        try fresh.prefill(new)
        #expect(used.logits(row: 0) == fresh.logits(row: 0))
    }

    @Test func modelPacksItsWeightsOnce() throws {
        let model = try TinyModel().load()
        #expect(!model.hasPackedWeights())
        let a = try InferenceContext(model: model, options: ContextOptions(backend: .simd, contextLength: 16))
        let b = try InferenceContext(model: model, options: ContextOptions(backend: .simd, contextLength: 16))
        #expect(model.hasPackedWeights() && model.packedWeights() === model.packedWeights())
        #expect(a.packedWeightBytes == b.packedWeightBytes && a.packedWeightBytes >= model.weights.parameterCount * 4 / 2)
        let blas = try InferenceContext(model: model, options: ContextOptions(backend: .blas, contextLength: 16))
        #expect(blas.packedWeightBytes == 0)
    }
}
