import CQuant
import Dispatch
import Foundation

/// Runs the forward pass of a `Model`: owns the activation buffers and the KV cache, both
/// allocated once, and executes the op plan layer by layer over a `Batch`.
///
/// KV cache layout: `[layer][slot][position][kvDim]`, keys and values in separate buffers.
public final class InferenceContext {
    public let model: Model
    public let backend: Backend
    public let contextLength: Int
    public let slots: Int
    public let maxBatchTokens: Int
    public let maxLogitsRows: Int
    /// Threads the `simd` backend's kernels use (OpenBLAS's own for `blas`; `naive` uses one).
    public let threads: Int
    /// The ops of one forward step, in order.
    public let plan: [Op]
    /// Timing hook; nil (the default) costs nothing.
    public var observer: ExecutionObserver?
    /// Attention probabilities recorded as the kernels compute them (nil, the default, costs one
    /// branch per row and head).
    public var attentionCapture: AttentionCapture?
    /// The logit lens: each block's residual read through the final norm and LM head (nil: off).
    public var logitLens: LogitLens?

    /// Tokens held per slot.
    public private(set) var lengths: [Int]

    /// Bytes held by the KV cache and by the activation buffers.
    public let kvCacheBytes: Int
    public let scratchBytes: Int
    /// Bytes of the model's packed weight copy this context runs on (`simd`; 0 otherwise).
    public var packedWeightBytes: Int { packed?.bytes ?? 0 }

    private let c: ModelConfig
    private let w: ModelWeights
    private let packed: PackedWeights?       // the `simd` backend's copy of the matrices
    private let rope: RopeTable
    private let kCache, vCache: KVBuffer      // [layers, slots, positions, kvDim]; `simd`: see `Attention.transposedRow`
    /// What the KV cache stores (float32 or half precision).
    public let cacheType: KVCacheType
    /// Positions held per slot in the cache: the context length, rounded up to whole key blocks
    /// for `simd` (whose transposed keys are scored a block at a time).
    private let cachePositions: Int
    private let x: FloatBuffer                // [T, embd] residual stream
    private let xb: FloatBuffer               // [T, embd] normed input of a sub-layer
    private let q: FloatBuffer                // [T, qDim]
    private let k, v: FloatBuffer             // [T, kvDim]
    private let att: FloatBuffer              // [T, qDim] attention output, heads side by side
    private let gate, up: FloatBuffer         // [T, ff]
    private let scores: FloatBuffer           // [T, ctx] one head at a time (blas, naive)
    private let rowScratch: FloatBuffer       // [threads, 3, positions] scores of up to three heads for the fused row kernels
    private let xOut: FloatBuffer             // [L, embd] final-normed rows that need logits
    private let logitsBuf: FloatBuffer        // [L, vocab]
    private let positions: UnsafeMutablePointer<Int32>  // [T]
    /// Where quantized weights are unpacked: simd, one panel per thread (`weightScratchStride`
    /// floats apart); naive, one row; blas, a chunk of rows per sgemm. Empty for float32 weights.
    private let weightScratch: FloatBuffer
    private let weightScratchStride: Int
    /// Activations quantized to 8-bit blocks for integer panels (`.q8`): `[T][maxCols / 32]`.
    private let q8: UnsafeMutablePointer<strata_q8_block>
    /// What the simd backend multiplies quantized weights with.
    public let activations: ActivationMode
    private var logitsRowsReady = 0

    public init(model: Model, options: ContextOptions = ContextOptions()) throws {
        self.model = model
        c = model.config
        w = model.weights
        backend = options.backend
        let ctx = options.contextLength ?? c.contextLength
        guard ctx >= 1, ctx <= 1 << 22 else { throw InferenceError.invalidOption("--ctx must be between 1 and 4194304, got \(ctx)") }
        guard options.slots >= 1, options.slots <= 4096 else {
            throw InferenceError.invalidOption("the number of sequence slots must be between 1 and 4096, got \(options.slots)")
        }
        guard options.maxBatchTokens >= 1, options.maxBatchTokens <= 1 << 16 else {
            throw InferenceError.invalidOption("--batch-tokens must be between 1 and 65536, got \(options.maxBatchTokens)")
        }
        if let t = options.threads, t < 1 || t > 1024 {
            throw InferenceError.invalidOption("--threads must be between 1 and 1024, got \(t)")
        }
        contextLength = ctx
        slots = options.slots
        maxBatchTokens = options.maxBatchTokens
        maxLogitsRows = max(1, min(options.maxLogitsRows ?? options.slots, options.maxBatchTokens))

        let T = maxBatchTokens, L = maxLogitsRows
        cachePositions = options.backend == .simd ? (ctx + Attention.keyBlock - 1) / Attention.keyBlock * Attention.keyBlock : ctx
        // The sizes below multiply header values and options; beyond any memory they could also
        // overflow Int, so an impossible request is refused here, sized in floating point.
        let planned = 8 * Double(c.blockCount) * Double(slots) * Double(cachePositions) * Double(c.kvDim)
            + 4 * Double(T) * (Double(ctx) + 2 * Double(c.embeddingLength + c.qDim + c.kvDim + c.feedForwardLength))
            + 4 * Double(L) * Double(c.embeddingLength + c.vocabSize) + 4 * Double(ctx) * Double(c.ropeDim)
        guard planned < 1e17 else {
            throw InferenceError.outOfMemory(needed: Int(min(planned, 9e18)), available: availableMemory(),
                                             detail: "KV cache and activations for \(slots) slot(s) × \(ctx) positions × \(c.blockCount) layers")
        }
        let kvElements = c.blockCount * slots * cachePositions * c.kvDim
        // The score matrix serves the GEMM attention of blas and naive; simd's fused kernel scores
        // into its per-thread rows instead.
        let scoreElements = options.backend == .simd ? 0 : T * ctx
        let scratchElements = T * (2 * c.embeddingLength + 2 * c.qDim + 2 * c.kvDim + 2 * c.feedForwardLength) + scoreElements
            + L * (c.embeddingLength + c.vocabSize) + ctx * c.ropeDim
        threads = min(options.threads ?? ThreadPool.shared.width, ThreadPool.shared.width)
        cacheType = options.cacheType
        kvCacheBytes = 2 * kvElements * cacheType.bytesPerElement
        let quantized = model.weights.matrices.contains { !$0.isFloat }
        let maxCols = model.weights.matrices.reduce(0) { max($0, $1.cols) }
        weightScratchStride = !quantized ? 0 : backend == .simd ? PackedMatrix.width * maxCols : GEMM.scratchFloats(backend, cols: maxCols)
        let weightScratchElements = backend == .simd ? threads * weightScratchStride : weightScratchStride
        activations = options.activations
        let q8Blocks = quantized && backend == .simd && activations == .q8 ? T * ((maxCols + 31) / 32) : 0
        scratchBytes = (scratchElements + 3 * threads * cachePositions + weightScratchElements) * 4 + q8Blocks * MemoryLayout<strata_q8_block>.stride
        let packBytes = backend == .simd && !model.hasPackedWeights(activations: activations)
            ? PackedWeights.bytes(for: model.weights, activations: activations) : 0
        let available = availableMemory()
        guard kvCacheBytes + scratchBytes + packBytes <= available else {
            var detail = "KV cache \(formatBytes(kvCacheBytes)) for \(slots) slot(s) × \(ctx) positions, activations \(formatBytes(scratchBytes))"
            if packBytes > 0 { detail += ", packed weights \(formatBytes(packBytes))" }
            throw InferenceError.outOfMemory(needed: kvCacheBytes + scratchBytes + packBytes, available: available, detail: detail)
        }

        BLASThreads.set(options.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        packed = backend == .simd ? model.packedWeights(activations: activations) : nil
        rope = RopeTable(positions: ctx, ropeDim: c.ropeDim, base: c.ropeBase, style: c.architecture.ropeStyle)
        // Not zeroed: a position is written before any kernel reads it (the simd kernel's last key
        // block also scores positions past the visible ones, but those scores are never used), and
        // zeroing would touch every page up front: 6 GB for 16 slots of 8192 positions.
        kCache = KVBuffer(type: cacheType, count: kvElements)
        vCache = KVBuffer(type: cacheType, count: kvElements)
        x = FloatBuffer(count: T * c.embeddingLength)
        xb = FloatBuffer(count: T * c.embeddingLength)
        q = FloatBuffer(count: T * c.qDim)
        k = FloatBuffer(count: T * c.kvDim)
        v = FloatBuffer(count: T * c.kvDim)
        att = FloatBuffer(count: T * c.qDim)
        gate = FloatBuffer(count: T * c.feedForwardLength)
        up = FloatBuffer(count: T * c.feedForwardLength)
        scores = FloatBuffer(count: scoreElements)
        rowScratch = FloatBuffer(count: 3 * threads * cachePositions)
        xOut = FloatBuffer(count: L * c.embeddingLength)
        logitsBuf = FloatBuffer(count: L * c.vocabSize)
        weightScratch = FloatBuffer(count: weightScratchElements, zeroed: false)
        q8 = .allocate(capacity: max(1, q8Blocks))
        positions = .allocate(capacity: T)
        positions.initialize(repeating: 0, count: T)
        lengths = Array(repeating: 0, count: slots)
        plan = Plan.llama(blockCount: c.blockCount)
    }

    deinit { positions.deallocate(); q8.deallocate() }

    public var config: ModelConfig { c }
    public var vocabSize: Int { c.vocabSize }

    // MARK: - KV cache management

    /// Forgets everything in a slot.
    public func reset(slot: Int) { truncate(slot: slot, to: 0) }

    private weak var claimant: AnyObject?

    /// Records `user` as the one driving the context and returns whether it already was. A user
    /// that keeps its own record of what the slots hold (a `Generator`, a `BatchRunner`) calls
    /// this first and forgets that record on false: someone else may have written the slots.
    public func claim(by user: AnyObject) -> Bool {
        if claimant === user { return true }
        claimant = user
        return false
    }

    /// Forgets everything in every slot.
    public func resetAll() { for s in 0 ..< slots { lengths[s] = 0 } }

    /// Keeps the first `length` positions of a slot.
    public func truncate(slot: Int, to length: Int) {
        precondition(slot >= 0 && slot < slots, "slot \(slot) out of range")
        precondition(length >= 0 && length <= lengths[slot], "cannot truncate slot \(slot) of \(lengths[slot]) to \(length)")
        lengths[slot] = length
    }

    // MARK: - Logits

    /// Number of logits rows the last `evaluate` produced.
    public var logitsRowCount: Int { logitsRowsReady }

    /// Calls `body` with the next-token logits of row `i` (see `Batch.Entry.logitsStart`).
    public func withLogits<R>(row i: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(i >= 0 && i < logitsRowsReady, "logits row \(i) not produced by the last step (\(logitsRowsReady) rows)")
        return try body(UnsafeBufferPointer(start: logitsBuf.base + i * c.vocabSize, count: c.vocabSize))
    }

    /// A copy of logits row `i` (allocates).
    public func logits(row i: Int) -> [Float] { withLogits(row: i) { Array($0) } }

    // MARK: - Forward

    /// Checks a batch against the context without running it: step size, logits rows, slots,
    /// room in each slot's context, token ids.
    public func validate(_ batch: Batch) throws {
        guard batch.tokens.count <= maxBatchTokens else { throw InferenceError.batchTooLarge(rows: batch.tokens.count, max: maxBatchTokens) }
        guard batch.logitsRows <= maxLogitsRows else { throw InferenceError.tooManyLogits(rows: batch.logitsRows, max: maxLogitsRows) }
        for (i, e) in batch.entries.enumerated() {
            guard e.slot >= 0 && e.slot < slots else { throw InferenceError.badSlot(e.slot, slots: slots) }
            // Each entry starts at its slot's current length, so a slot may appear only once per step.
            for other in batch.entries[..<i] where other.slot == e.slot { throw InferenceError.slotRepeated(e.slot) }
            guard lengths[e.slot] + e.count <= contextLength else {
                throw InferenceError.contextFull(slot: e.slot, length: lengths[e.slot], adding: e.count, contextLength: contextLength)
            }
        }
        for t in batch.tokens where t < 0 || Int(t) >= c.vocabSize {
            throw InferenceError.tokenOutOfRange(id: t, vocabSize: c.vocabSize)
        }
    }

    /// Runs one forward step: appends every entry's tokens to its slot and computes the requested
    /// logits. Nothing is allocated. Invalid input throws before any compute (see `validate`).
    public func evaluate(_ batch: Batch) throws {
        try validate(batch)
        let T = batch.tokens.count
        logitsRowsReady = 0
        guard T > 0 else { return }
        for e in batch.entries {
            for i in 0 ..< e.count { positions[e.rowStart + i] = Int32(lengths[e.slot] + i) }
        }
        batch.tokens.withUnsafeBufferPointer { tokens in
            if let observer {
                // Ops are timed back to back: each one from the end of the previous one, so the
                // plan's own loop overhead is charged to the op it leads into and nothing is lost.
                lastTimestamp = now()
                for op in plan { runTimed(op, observer: observer, batch: batch, tokens: tokens, T: T) }
            } else {
                for op in plan { execute(op, batch: batch, tokens: tokens, T: T) }
            }
        }
        for e in batch.entries { lengths[e.slot] += e.count }
        logitsRowsReady = batch.logitsRows
    }

    /// Prefills `tokens` into `slot` in chunks of at most `maxBatchTokens`, with logits for the
    /// last token (row 0). Returns without logits for an empty input.
    public func prefill<C: Collection>(_ tokens: C, slot: Int = 0) throws where C.Element == Int32 {
        guard lengths[slot] + tokens.count <= contextLength else {
            throw InferenceError.contextFull(slot: slot, length: lengths[slot], adding: tokens.count, contextLength: contextLength)
        }
        var batch = Batch(capacity: maxBatchTokens)
        var start = tokens.startIndex
        while start != tokens.endIndex {
            let end = tokens.index(start, offsetBy: maxBatchTokens, limitedBy: tokens.endIndex) ?? tokens.endIndex
            batch.removeAll()
            batch.add(slot: slot, tokens: tokens[start ..< end], logits: end == tokens.endIndex ? .last : .none)
            try evaluate(batch)
            start = end
        }
    }

    // MARK: - Ops

    @inline(__always)
    private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private var lastTimestamp: UInt64 = 0

    private func runTimed(_ op: Op, observer: ExecutionObserver, batch: Batch, tokens: UnsafeBufferPointer<Int32>, T: Int) {
        execute(op, batch: batch, tokens: tokens, T: T)
        if op.kind == .attnScores { return }   // the attention step records its own parts
        let t1 = now()
        // The final norm and the LM head run only on the rows that need logits.
        let rows = op.kind == .output || op.kind == .outputNorm ? batch.logitsRows : T
        observer.record(kind: op.kind, layer: op.layer, rows: rows, pairs: 0, start: lastTimestamp, duration: t1 - lastTimestamp)
        lastTimestamp = t1
    }

    private func execute(_ op: Op, batch: Batch, tokens: UnsafeBufferPointer<Int32>, T: Int) {
        let E = c.embeddingLength, F = c.feedForwardLength
        switch op.kind {
        case .tokenEmbd:
            Ops.embed(tokens: tokens.baseAddress!, count: T, table: w.tokenEmbd, into: x.matrix(rows: T, cols: E))
        case .attnNorm:
            let weight = w.layers[op.layer!].attnNorm
            byRows(T) { r in Ops.rmsNorm(x: x.matrix(rows: T, cols: E).rows(r), weight: weight, eps: c.rmsEpsilon, y: xb.matrix(rows: T, cols: E).rows(r)) }
        case .attnQ:
            project(xb, E, w.layers[op.layer!].attnQ, packed?.layers[op.layer!].attnQ, q, c.qDim, T, bias: w.layers[op.layer!].attnQBias)
        case .attnK:
            project(xb, E, w.layers[op.layer!].attnK, packed?.layers[op.layer!].attnK, k, c.kvDim, T, bias: w.layers[op.layer!].attnKBias)
        case .attnV:
            project(xb, E, w.layers[op.layer!].attnV, packed?.layers[op.layer!].attnV, v, c.kvDim, T, bias: w.layers[op.layer!].attnVBias)
        case .rope:
            byRows(T) { r in
                Ops.rope(x: q.matrix(rows: T, cols: c.qDim).rows(r), heads: c.headCount, headDim: c.headDim, positions: positions + r.lowerBound, table: rope)
                Ops.rope(x: k.matrix(rows: T, cols: c.kvDim).rows(r), heads: c.headCountKV, headDim: c.headDim, positions: positions + r.lowerBound, table: rope)
            }
        case .kvStore:
            switch cacheType {
            case .f32: storeKV(Float.self, layer: op.layer!, batch: batch)
            case .f16: storeKV(Float16.self, layer: op.layer!, batch: batch)
            }
        case .attnScores:
            attention(layer: op.layer!, batch: batch, T: T)
        case .attnSoftmax, .attnValues, .attnFused:
            break  // run inside the attention step
        case .attnOutput:
            linear(att.matrix(rows: T, cols: c.qDim), w.layers[op.layer!].attnOutput, packed?.layers[op.layer!].attnOutput,
                   x.matrix(rows: T, cols: E), accumulate: true)
        case .ffnNorm:
            let weight = w.layers[op.layer!].ffnNorm
            byRows(T) { r in Ops.rmsNorm(x: x.matrix(rows: T, cols: E).rows(r), weight: weight, eps: c.rmsEpsilon, y: xb.matrix(rows: T, cols: E).rows(r)) }
        case .ffnGate:
            project(xb, E, w.layers[op.layer!].ffnGate, packed?.layers[op.layer!].ffnGate, gate, F, T, bias: nil)
        case .ffnUp:
            project(xb, E, w.layers[op.layer!].ffnUp, packed?.layers[op.layer!].ffnUp, up, F, T, bias: nil)
        case .ffnAct:
            byRows(T) { r in Ops.swiglu(gate: gate.matrix(rows: T, cols: F).rows(r), up: up.matrix(rows: T, cols: F).rows(r)) }
        case .ffnDown:
            linear(gate.matrix(rows: T, cols: F), w.layers[op.layer!].ffnDown, packed?.layers[op.layer!].ffnDown,
                   x.matrix(rows: T, cols: E), accumulate: true)
            if let lens = logitLens, let e = batch.entries.first(where: { $0.logits != .none && $0.count > 0 }) {
                // What the model would predict if it stopped here: the same norm and LM head.
                let row = e.rowStart + e.count - 1, l = op.layer!
                Ops.rmsNorm(x: Matrix(base: x.matrix(rows: T, cols: E).row(row), rows: 1, cols: E, stride: E), weight: w.outputNorm,
                            eps: c.rmsEpsilon, y: lens.normed.matrix(rows: 1, cols: E))
                linear(lens.normed.matrix(rows: 1, cols: E), w.output, packed?.output,
                       lens.buffer.matrix(offset: l * c.vocabSize, rows: 1, cols: c.vocabSize))
            }
        case .outputNorm:
            // Gather only the rows that need logits, normalising as they are copied.
            let src = x.matrix(rows: T, cols: E)
            var out = 0
            for e in batch.entries {
                let rows: Range<Int>
                switch e.logits {
                case .none: continue
                case .last:
                    guard e.count > 0 else { continue }   // an empty entry has no last row
                    rows = (e.rowStart + e.count - 1) ..< (e.rowStart + e.count)
                case .all: rows = e.rowStart ..< e.rowStart + e.count
                }
                if rows.isEmpty { continue }
                let n = rows.count
                Ops.rmsNorm(x: Matrix(base: src.row(rows.lowerBound), rows: n, cols: E, stride: E), weight: w.outputNorm,
                            eps: c.rmsEpsilon, y: xOut.matrix(offset: out * E, rows: n, cols: E))
                out += n
            }
        case .output:
            let L = batch.logitsRows
            if L > 0 {
                linear(xOut.matrix(rows: L, cols: E), w.output, packed?.output, logitsBuf.matrix(rows: L, cols: c.vocabSize))
            }
        case .sampling:
            break
        }
    }

    /// Runs a row-wise op (norm, RoPE, SwiGLU) over rows `0 ..< T`: on the simd backend split
    /// across the pool's threads, each row computed exactly as it would be alone; else in one go.
    @inline(__always)
    private func byRows(_ T: Int, _ body: (Range<Int>) -> Void) {
        guard backend == .simd, threads > 1, T > 1 else { body(0 ..< T); return }
        ThreadPool.shared.run(parts: min(threads, T)) { t, n in body(T * t / n ..< T * (t + 1) / n) }
    }

    /// `out[T, n] = input[T, k] · Wᵀ (+ bias)`.
    @inline(__always)
    private func project(_ input: FloatBuffer, _ kDim: Int, _ weight: WeightMatrix, _ packedWeight: PackedMatrix?,
                         _ out: FloatBuffer, _ n: Int, _ T: Int, bias: FloatBuffer?) {
        let y = out.matrix(rows: T, cols: n)
        linear(input.matrix(rows: T, cols: kDim), weight, packedWeight, y)
        if let bias { Ops.addBias(x: y, bias: bias) }
    }

    /// `out = a · Wᵀ (+ out)` with `W: [out.cols × a.cols]`: the packed kernel when the context
    /// has packed weights (`simd`), else the backend's GEMM on the weights as stored.
    @inline(__always)
    private func linear(_ a: Matrix, _ weight: WeightMatrix, _ packedWeight: PackedMatrix?, _ out: Matrix, accumulate: Bool = false) {
        if let packedWeight {
            PackedGEMM.parallel(a: a, w: packedWeight, c: out, accumulate: accumulate, threads: threads,
                                scratch: weightScratch.base, stride: weightScratchStride, q8: q8)
        } else {
            GEMM.run(backend, a: a, weight: weight, c: out, accumulate: accumulate,
                     scratch: weightScratch.base, scratchFloats: weightScratchStride)
        }
    }

    @inline(__always)
    private func cacheOffset(layer: Int, slot: Int) -> Int { ((layer * slots) + slot) * cachePositions * c.kvDim }

    /// Appends the step's keys and values to their slots, converted to the cache's type. `simd`:
    /// the layout `Attention.transposedRow` reads (keys in transposed blocks, values head by
    /// head); otherwise row-major `[position][kvDim]`.
    private func storeKV<E: KVElement>(_: E.Type, layer l: Int, batch: Batch) {
        let kc = kCache.elements(E.self), vc = vCache.elements(E.self)
        let hd = c.headDim, kb = Attention.keyBlock, kvDim = c.kvDim
        for e in batch.entries {
            let base = cacheOffset(layer: l, slot: e.slot)
            for i in 0 ..< e.count {
                let pos = lengths[e.slot] + i
                let kSrc = k.base + (e.rowStart + i) * kvDim, vSrc = v.base + (e.rowStart + i) * kvDim
                if backend == .simd {
                    for g in 0 ..< c.headCountKV {
                        let kDst = kc + base + (g * cachePositions + pos / kb * kb) * hd + pos % kb
                        let vDst = vc + base + (g * cachePositions + pos) * hd
                        for d in 0 ..< hd { kDst[d * kb] = E(kSrc[g * hd + d]); vDst[d] = E(vSrc[g * hd + d]) }
                    }
                } else {
                    let kDst = kc + base + pos * kvDim, vDst = vc + base + pos * kvDim
                    for d in 0 ..< kvDim { kDst[d] = E(kSrc[d]); vDst[d] = E(vSrc[d]) }
                }
            }
        }
    }

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
    private func attention(layer: Int, batch: Batch, T: Int) {
        switch cacheType {
        case .f32: attention(Float.self, layer: layer, batch: batch, T: T)
        case .f16: attention(Float16.self, layer: layer, batch: batch, T: T)
        }
    }

    private func attention<E: KVElement>(_: E.Type, layer: Int, batch: Batch, T: Int) {
        let kc = kCache.elements(E.self), vc = vCache.elements(E.self)
        let capture = attentionCapture
        precondition(capture.map { $0.positions >= contextLength && $0.heads == c.headCount } ?? true, "attention capture too small for the context")
        let hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        let timed = observer != nil
        var tScores: UInt64 = 0, tSoftmax: UInt64 = 0, tValues: UInt64 = 0, pairs = 0, fusedPairs = 0
        var fusedTime: UInt64 = 0
        let start = timed ? lastTimestamp : 0

        if backend == .simd {
            // Every row through the fused kernel, rows dealt out to the threads in turn (which
            // also balances a causal prefill chunk, whose later rows see more keys).
            let shape = Attention.Shape(headDim: hd, heads: c.headCount, kvHeads: c.headCountKV, kvDim: c.kvDim)
            ThreadPool.shared.run(parts: threads) { t, n in
                let scratch = rowScratch.base + 3 * t * cachePositions
                for e in batch.entries {
                    let base = cacheOffset(layer: layer, slot: e.slot)
                    var i = (t - e.rowStart % n + n) % n
                    while i < e.count {
                        let row = e.rowStart + i, visible = lengths[e.slot] + i + 1
                        let cap = capture?.base(layer: layer, row: row)
                        for g in 0 ..< c.headCountKV {
                            Attention.transposedRow(q: q.base + row * c.qDim, kt: kc + base, v: vc + base,
                                                    positions: cachePositions, out: att.base + row * c.qDim, visible: visible,
                                                    kvHead: g, shape: shape, scale: scale, scratch: scratch,
                                                    capture: cap, captureStride: capture?.headStride ?? 0)
                        }
                        i += n
                    }
                }
            }
            if let observer {
                for e in batch.entries { fusedPairs += e.count * lengths[e.slot] + e.count * (e.count + 1) / 2 }
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
                let base = cacheOffset(layer: layer, slot: e.slot)
                for i in 0 ..< e.count {
                    let row = e.rowStart + i, visible = lengths[e.slot] + i + 1
                    fusedPairs += visible
                    let cap = capture?.base(layer: layer, row: row)
                    for g in 0 ..< c.headCountKV {
                        Attention.fusedRow(q: q.base + row * c.qDim, k: kc + base, v: vc + base,
                                           out: att.base + row * c.qDim, visible: visible, kvHead: g,
                                           shape: shape, scale: scale, scratch: rowScratch.base,
                                           capture: cap, captureStride: capture?.headStride ?? 0)
                    }
                }
            }
            if timed && fusedPairs > 0 { fusedTime = now() - start }
        }

        for e in batch.entries where !allFused && (backend == .naive || e.count > Self.fusedRowLimit) {
            let p0 = lengths[e.slot]          // positions already in the cache before this step
            let base = cacheOffset(layer: layer, slot: e.slot)
            // The naive backend scores every row against all keys; BLAS skips each block's future.
            let block = backend == .blas ? Self.causalBlock : e.count
            for h in 0 ..< c.headCount {
                let g = h / c.groupSize
                var r0 = 0
                while r0 < e.count {
                    let r1 = min(r0 + block, e.count)
                    let S = p0 + r1               // keys visible to the block's last row
                    if h == 0 { pairs += (r1 - r0) * S }
                    let qh = q.matrix(offset: (e.rowStart + r0) * c.qDim + h * hd, rows: r1 - r0, cols: hd, stride: c.qDim)
                    let kg = kCache.matrix(offset: base + g * hd, rows: S, cols: hd, stride: c.kvDim)
                    let vg = vCache.matrix(offset: base + g * hd, rows: S, cols: hd, stride: c.kvDim)
                    let sc = scores.matrix(rows: r1 - r0, cols: S)
                    let oh = att.matrix(offset: (e.rowStart + r0) * c.qDim + h * hd, rows: r1 - r0, cols: hd, stride: c.qDim)
                    let t0 = timed ? now() : 0
                    GEMM.run(backend, a: qh, b: kg, c: sc, transB: true)
                    let t1 = timed ? now() : 0
                    softmaxRows(sc, scale: scale, firstVisible: p0 + r0 + 1)
                    if let capture {
                        for r in r0 ..< r1 {
                            // Row r sees the keys up to p0 + r (the block's matrix is wider; the rest is masked).
                            capture.base(layer: layer, row: e.rowStart + r).map { ($0 + h * capture.headStride).update(from: sc.row(r - r0), count: p0 + r + 1) }
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
    private func softmaxRows(_ sc: Matrix, scale: Float, firstVisible: Int) {
        guard sc.rows >= 2, sc.rows * sc.cols >= 1 << 15, ProcessInfo.processInfo.activeProcessorCount > 1 else {
            Ops.causalSoftmax(scores: sc, scale: scale, firstVisible: firstVisible)
            return
        }
        DispatchQueue.concurrentPerform(iterations: 2) { p in
            let r0 = p * sc.rows / 2, r1 = (p + 1) * sc.rows / 2
            Ops.causalSoftmax(scores: Matrix(base: sc.row(r0), rows: r1 - r0, cols: sc.cols, stride: sc.stride),
                              scale: scale, firstVisible: firstVisible + r0)
        }
    }
}
