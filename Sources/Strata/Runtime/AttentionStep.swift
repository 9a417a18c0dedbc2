import Dispatch
import Foundation

/// The attention step of a layer, for every sequence of the step: each query row against its
/// slot's cached keys (all of them, or the last `window` positions on a sliding-window layer),
/// softmax, and the weighted sum of values. Three ways, by backend (see `attention(_:…)`).
extension InferenceContext {
    /// Sequences with at most this many rows in a step take the fused row kernel (BLAS backend).
    static let fusedRowLimit = 8
    /// Row block of the causal GEMM path: keys after a block's last row are never scored.
    static let causalBlock = 128

    /// Grouped-query attention for every sequence of the step. Query head `h` reads key/value head
    /// `g = h / groupSize`. The naive backend runs, per head, scores `[T, S] = q_h · K_gᵀ`, the fused
    /// causal softmax, then `att_h = P · V_g`, all with textbook loops. The BLAS backend runs short
    /// sequences (decode rows) through the fused row kernel and long ones (prefill) as BLAS GEMMs in
    /// causal row blocks. (Spreading the fused kernel over Dispatch threads measured slower: they
    /// compete with OpenBLAS's own spinning worker threads for the same cores.)
    func attention(layer: Int, scale: Float, batch: Batch, T: Int) {
        let window = cache.windows[layer]
        switch cacheType {
        case .f32: attention(Float.self, layer: layer, window: window, scale: scale, batch: batch, T: T)
        case .f16: attention(Float16.self, layer: layer, window: window, scale: scale, batch: batch, T: T)
        }
    }

    private func attention<E: KVElement>(_: E.Type, layer: Int, window: Int?, scale: Float, batch: Batch, T: Int) {
        let kc = cache.keys.elements(E.self), vc = cache.values.elements(E.self)
        let cachePositions = cache.positions
        let q = buffer(.q), att = buffer(.attention)
        let capture = attentionCapture
        precondition(capture.map { $0.positions >= contextLength && $0.heads == c.headCount } ?? true, "attention capture too small for the context")
        let hd = c.headDim
        let timed = observer != nil
        var tScores: UInt64 = 0, tSoftmax: UInt64 = 0, tValues: UInt64 = 0, pairs = 0, fusedPairs = 0
        var fusedTime: UInt64 = 0
        let start = timed ? lastTimestamp : 0

        if backend == .simd {
            // Every (row, KV head) through the fused kernel, dealt out to the threads in turn, KV
            // head first: a decode row's heads are shared too, a causal prefill chunk, whose later
            // rows see more keys, is balanced, and each thread keeps one KV head's keys and values
            // in its L2 across the chunk's rows (prefill attention 10% faster than row first).
            // Each pair's arithmetic is the same on any thread.
            let shape = Attention.Shape(headDim: hd, heads: c.headCount, kvHeads: c.headCountKV, kvDim: c.kvDim)
            let G = c.headCountKV
            ThreadPool.shared.run(parts: threads) { t, n in
                let scratch = rowScratch.base + 3 * t * cachePositions
                for e in batch.entries {
                    let base = cache.offset(layer: layer, slot: e.slot)
                    var j = (t - e.rowStart * G % n + n) % n
                    while j < e.count * G {
                        let g = j / e.count, i = j - g * e.count
                        let row = e.rowStart + i, visible = lengths[e.slot] + i + 1
                        let first = cache.firstVisible(layer: layer, visible: visible)
                        Attention.transposedRow(q: q.base + row * c.qDim, kt: kc + base, v: vc + base,
                                                positions: cachePositions, out: att.base + row * c.qDim, visible: visible, first: first,
                                                kvHead: g, shape: shape, scale: scale, scratch: scratch,
                                                capture: capture?.base(layer: layer, row: row), captureStride: capture?.headStride ?? 0)
                        j += n
                    }
                }
            }
            if let observer {
                for e in batch.entries {
                    for i in 0 ..< e.count { let visible = lengths[e.slot] + i + 1; fusedPairs += min(visible, window ?? visible) }
                }
                let end = now()
                lastTimestamp = end
                observer.record(kind: .attnFused, layer: layer, rows: T, pairs: fusedPairs, start: start, duration: end - start)
            }
            return
        }

        // Short sequences (and every sequence with a half-precision cache, which the GEMMs cannot
        // read): the fused kernel, per (row, KV head).
        let allFused = cacheType != .f32
        if backend == .blas || allFused {
            let shape = Attention.Shape(headDim: hd, heads: c.headCount, kvHeads: c.headCountKV, kvDim: c.kvDim)
            for e in batch.entries where allFused || e.count <= Self.fusedRowLimit {
                let base = cache.offset(layer: layer, slot: e.slot)
                for i in 0 ..< e.count {
                    let row = e.rowStart + i, visible = lengths[e.slot] + i + 1
                    let first = cache.firstVisible(layer: layer, visible: visible)
                    fusedPairs += visible - first
                    let cap = capture?.base(layer: layer, row: row)
                    for g in 0 ..< c.headCountKV {
                        Attention.fusedRow(q: q.base + row * c.qDim, k: kc + base, v: vc + base,
                                           out: att.base + row * c.qDim, visible: visible, first: first, kvHead: g,
                                           shape: shape, scale: scale, scratch: rowScratch.base,
                                           capture: cap, captureStride: capture?.headStride ?? 0)
                    }
                }
            }
            if timed && fusedPairs > 0 { fusedTime = now() - start }
        }

        for e in batch.entries where !allFused && (backend == .naive || e.count > Self.fusedRowLimit) {
            let p0 = lengths[e.slot]          // positions already in the cache before this step
            let base = cache.offset(layer: layer, slot: e.slot)
            // The naive backend scores every row against all its keys; BLAS skips each block's future.
            let block = backend == .blas ? Self.causalBlock : e.count
            for h in 0 ..< c.headCount {
                let g = h / c.groupSize
                var r0 = 0
                while r0 < e.count {
                    let r1 = min(r0 + block, e.count)
                    let S = p0 + r1               // keys visible to the block's last row
                    // Keys before the block's first row's window are never scored.
                    let k0 = cache.firstVisible(layer: layer, visible: p0 + r0 + 1)
                    if h == 0 { pairs += (r1 - r0) * (S - k0) }
                    let qh = q.matrix(offset: (e.rowStart + r0) * c.qDim + h * hd, rows: r1 - r0, cols: hd, stride: c.qDim)
                    let kg = cache.keys.matrix(offset: base + k0 * c.kvDim + g * hd, rows: S - k0, cols: hd, stride: c.kvDim)
                    let vg = cache.values.matrix(offset: base + k0 * c.kvDim + g * hd, rows: S - k0, cols: hd, stride: c.kvDim)
                    let sc = scores.matrix(rows: r1 - r0, cols: S - k0)
                    let oh = att.matrix(offset: (e.rowStart + r0) * c.qDim + h * hd, rows: r1 - r0, cols: hd, stride: c.qDim)
                    let t0 = timed ? now() : 0
                    GEMM.run(backend, a: qh, b: kg, c: sc, transB: true)
                    let t1 = timed ? now() : 0
                    softmaxRows(sc, scale: scale, firstVisible: p0 + r0 + 1 - k0, window: window)
                    if let capture {
                        for r in r0 ..< r1 {
                            // Row r sees the keys from k0 to p0 + r (the block's matrix is wider; the rest is masked).
                            if let dst = capture.base(layer: layer, row: e.rowStart + r).map({ $0 + h * capture.headStride }) {
                                dst.update(repeating: 0, count: k0)
                                (dst + k0).update(from: sc.row(r - r0), count: p0 + r + 1 - k0)
                            }
                        }
                    }
                    let t2 = timed ? now() : 0
                    GEMM.run(backend, a: sc, b: vg, c: oh, transB: false)
                    if timed { let t3 = now(); tScores += t1 - t0; tSoftmax += t2 - t1; tValues += t3 - t2 }
                    r0 = r1
                }
            }
        }
        if let observer {
            let end = now()
            lastTimestamp = end
            let spent = end - start
            if fusedTime > 0 {
                observer.record(kind: .attnFused, layer: layer, rows: T, pairs: fusedPairs, start: start, duration: fusedTime)
            }
            if tScores + tSoftmax + tValues > 0 || fusedTime == 0 {
                // Loop overhead outside the timed calls is attributed to the scores step.
                let extra = spent - min(spent, tScores + tSoftmax + tValues + fusedTime)
                let s0 = start + fusedTime
                observer.record(kind: .attnScores, layer: layer, rows: T, pairs: pairs, start: s0, duration: tScores + extra)
                observer.record(kind: .attnSoftmax, layer: layer, rows: T, pairs: pairs, start: s0 + tScores + extra, duration: tSoftmax)
                observer.record(kind: .attnValues, layer: layer, rows: T, pairs: pairs, start: s0 + tScores + extra + tSoftmax, duration: tValues)
            }
        }
    }


    /// The causal softmax of a block of score rows; a large block (prefill) is split in two halves
    /// run on two threads, which measured 15% faster prefill than one thread here.
    private func softmaxRows(_ sc: Matrix, scale: Float, firstVisible: Int, window: Int?) {
        guard sc.rows >= 2, sc.rows * sc.cols >= 1 << 15, ProcessInfo.processInfo.activeProcessorCount > 1 else {
            Ops.causalSoftmax(scores: sc, scale: scale, firstVisible: firstVisible, window: window)
            return
        }
        DispatchQueue.concurrentPerform(iterations: 2) { p in
            let r0 = p * sc.rows / 2, r1 = (p + 1) * sc.rows / 2
            Ops.causalSoftmax(scores: Matrix(base: sc.row(r0), rows: r1 - r0, cols: sc.cols, stride: sc.stride),
                              scale: scale, firstVisible: firstVisible + r0, window: window)
        }
    }
}
