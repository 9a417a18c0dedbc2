import CQuant
import Dispatch
import Foundation

/// Runs the forward pass of a `Model`: owns the activation buffers and the KV cache, both
/// allocated once, and executes the model's plan op by op over a `Batch`. It knows ops (norm,
/// projection, RoPE, attention…), not architectures: `Architectures/` describes each model's
/// pass as a `ModelPlan`, which `init` binds to memory once.
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
    public internal(set) var lengths: [Int]

    /// Bytes held by the KV cache and by the activation buffers.
    public let kvCacheBytes: Int
    public let scratchBytes: Int
    /// Bytes of the model's packed weight copy this context runs on (`simd`; 0 otherwise).
    public var packedWeightBytes: Int { packed?.bytes ?? 0 }

    let c: ModelConfig
    private let packed: PackedWeights?       // the `simd` backend's copy of the matrices
    let cache: KVCache
    /// What the KV cache stores (float32 or half precision).
    public let cacheType: KVCacheType
    /// Activation buffers by slot (`[T, width]` each; unused slots empty).
    private let buffers: [FloatBuffer]
    private let widths: [Int]
    let scores: FloatBuffer           // [T, ctx] one head at a time (blas, naive)
    let rowScratch: FloatBuffer       // [threads, 3, positions] scores of up to three heads for the fused row kernels
    private let xOut: FloatBuffer             // [L, embd] final-normed rows that need logits
    private let logitsBuf: FloatBuffer        // [L, vocab]
    private let positions: UnsafeMutablePointer<Int32>  // [T]
    /// Where quantized weights are unpacked: simd, one panel per thread (`weightScratchStride`
    /// floats apart); naive, one row; blas, a chunk of rows per sgemm. Empty for float32 weights.
    private let weightScratch: FloatBuffer
    private let weightScratchStride: Int
    /// Activations quantized into blocks for integer panels (`.q8`, `.q24`): `[T][maxCols / 32]`.
    private let activationBlocks: UnsafeMutableRawPointer
    /// What the simd backend multiplies quantized weights with.
    public let activations: ActivationMode
    private var logitsRowsReady = 0
    /// The plan bound to this context's memory.
    private let steps: [Step]
    /// The final norm and LM head (for the logit lens).
    private let finalNorm: FloatBuffer
    private let lmHead: (WeightMatrix, PackedMatrix?)

    /// A plan step with its tensors and buffers resolved.
    private struct Step {
        let op: Op
        let kernel: Kernel
        /// The last op of its block (where the logit lens reads the residual).
        let endsBlock: Bool
    }

    private enum Kernel {
        case embed(WeightMatrix, scale: Float)
        case norm(FloatBuffer, from: Slot, to: Slot)
        case headNorm(FloatBuffer, slot: Slot, heads: Int)
        /// `sameBlocks`: the previous step quantized the same input the same way for integer
        /// panels (attn_k and attn_v after attn_q, ffn_up after ffn_gate), so the activation
        /// blocks it left are this step's too.
        case linear(WeightMatrix, PackedMatrix?, bias: FloatBuffer?, from: Slot, to: [Slot], accumulate: Bool, sameBlocks: Bool)
        case rope(RopeTable)
        case storeKV(layer: Int)
        case attention(layer: Int, scale: Float)
        case normAdd(FloatBuffer, from: Slot, into: Slot)
        case gated(Activation)
        case outputNorm(FloatBuffer)
        case output(WeightMatrix, PackedMatrix?)
    }

    public init(model: Model, options: ContextOptions = ContextOptions()) throws {
        self.model = model
        c = model.config
        let mp = model.plan
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
        let cachePositions = KVCache.positions(contextLength: ctx, transposed: options.backend == .simd)
        let rowWidths = Slot.allCases.reduce(0) { $0 + mp.width($1) }
        var ropeSpecs: [RopeSpec] = []
        for s in mp.steps { if case let .rope(r) = s.action, !ropeSpecs.contains(r) { ropeSpecs.append(r) } }
        // The sizes below multiply header values and options; beyond any memory they could also
        // overflow Int, so an impossible request is refused here, sized in floating point.
        let planned = 8 * Double(c.blockCount) * Double(slots) * Double(cachePositions) * Double(c.kvDim)
            + 4 * Double(T) * (Double(ctx) + Double(rowWidths))
            + 4 * Double(L) * Double(c.embeddingLength + c.vocabSize) + 4 * Double(ctx) * Double(c.ropeDim * ropeSpecs.count)
        guard planned < 1e17 else {
            throw InferenceError.outOfMemory(needed: Int(min(planned, 9e18)), available: availableMemory(),
                                             detail: "KV cache and activations for \(slots) slot(s) × \(ctx) positions × \(c.blockCount) layers")
        }
        let kvElements = KVCache.elements(layers: c.blockCount, slots: slots, positions: cachePositions, kvDim: c.kvDim)
        // The score matrix serves the GEMM attention of blas and naive; simd's fused kernel scores
        // into its per-thread rows instead.
        let scoreElements = options.backend == .simd ? 0 : T * ctx
        let scratchElements = T * rowWidths + scoreElements + L * (c.embeddingLength + c.vocabSize) + ctx * c.ropeDim * ropeSpecs.count
        threads = min(options.threads ?? ThreadPool.shared.width, ThreadPool.shared.width)
        cacheType = options.cacheType
        kvCacheBytes = 2 * kvElements * cacheType.bytesPerElement
        let weights = model.weights
        let multiplied = PackedWeights.multiplied(mp).map { weights.matrix($0) }
        let quantized = multiplied.contains { !$0.isFloat }
        let maxCols = multiplied.reduce(0) { max($0, $1.cols) }
        weightScratchStride = !quantized ? 0 : backend == .simd ? PackedMatrix.width * maxCols : GEMM.scratchFloats(backend, cols: maxCols)
        let weightScratchElements = backend == .simd ? threads * weightScratchStride : weightScratchStride
        activations = options.activations
        let blockBytes = quantized && backend == .simd ? T * ((maxCols + 31) / 32) * activations.blockBytes : 0
        scratchBytes = (scratchElements + 3 * threads * cachePositions + weightScratchElements) * 4 + blockBytes
        let packBytes = backend == .simd && !model.hasPackedWeights(activations: activations)
            ? model.packedWeightBytes(activations: activations) : 0
        let available = availableMemory()
        guard kvCacheBytes + scratchBytes + packBytes <= available else {
            var detail = "KV cache \(formatBytes(kvCacheBytes)) for \(slots) slot(s) × \(ctx) positions, activations \(formatBytes(scratchBytes))"
            if packBytes > 0 { detail += ", packed weights \(formatBytes(packBytes))" }
            throw InferenceError.outOfMemory(needed: kvCacheBytes + scratchBytes + packBytes, available: available, detail: detail)
        }

        BLASThreads.set(options.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let packed = backend == .simd ? model.packedWeights(activations: activations) : nil
        self.packed = packed
        var windows = [Int?](repeating: nil, count: c.blockCount)
        for s in mp.steps { if case let .attention(w, _) = s.action, let l = s.op.layer { windows[l] = w } }
        cache = KVCache(type: cacheType, layers: c.blockCount, slots: slots, contextLength: ctx,
                        headDim: c.headDim, kvHeads: c.headCountKV, transposed: backend == .simd, windows: windows)
        if mp.steps.contains(where: { if case .gated(.geluTanh) = $0.action { true } else { false } }) {
            _ = Ops.geluTable   // built here, not in the first forward step
        }
        buffers = Slot.allCases.map { FloatBuffer(count: T * mp.width($0)) }
        widths = mp.widths
        scores = FloatBuffer(count: scoreElements)
        rowScratch = FloatBuffer(count: 3 * threads * cachePositions)
        xOut = FloatBuffer(count: L * c.embeddingLength)
        logitsBuf = FloatBuffer(count: L * c.vocabSize)
        weightScratch = FloatBuffer(count: weightScratchElements, zeroed: false)
        activationBlocks = .allocate(byteCount: max(1, blockBytes), alignment: 64)
        positions = .allocate(capacity: T)
        positions.initialize(repeating: 0, count: T)
        lengths = Array(repeating: 0, count: slots)
        plan = mp.ops

        // Bind the plan: tensors by name, one RoPE table per distinct RoPE.
        let ropeDim = c.ropeDim
        let tables = ropeSpecs.map { r in
            RopeTable(positions: ctx, ropeDim: ropeDim, base: r.base, style: r.style, positionScale: r.positionScale,
                      factors: r.factorsTensor.map { weights.vector($0) })
        }
        var bound: [Step] = []
        for (i, s) in mp.steps.enumerated() {
            let kernel: Kernel
            switch s.action {
            case let .embed(table, scale): kernel = .embed(weights.matrix(table), scale: scale)
            case let .norm(w, from, to): kernel = .norm(weights.vector(w), from: from, to: to)
            case let .headNorm(w, slot, heads): kernel = .headNorm(weights.vector(w), slot: slot, heads: heads)
            case let .linear(w, bias, from, to, acc):
                let p = packed?.matrix(w)
                var same = false
                if let p, p.isInteger, case let .linear(_, prev?, _, prevFrom, prevTo, _, _)? = bound.last?.kernel {
                    same = prev.isInteger && prev.integerActivations == p.integerActivations && prev.cols == p.cols
                        && prevFrom == from && !prevTo.contains(from)
                }
                kernel = .linear(weights.matrix(w), p, bias: bias.map { weights.vector($0) }, from: from, to: to, accumulate: acc, sameBlocks: same)
            case let .rope(r): kernel = .rope(tables[ropeSpecs.firstIndex(of: r)!])
            case .storeKV: kernel = .storeKV(layer: s.op.layer!)
            case let .attention(_, scale): kernel = .attention(layer: s.op.layer!, scale: scale)
            case let .normAdd(w, from, into): kernel = .normAdd(weights.vector(w), from: from, into: into)
            case let .gated(a): kernel = .gated(a)
            case let .outputNorm(w): kernel = .outputNorm(weights.vector(w))
            case let .output(w): kernel = .output(weights.matrix(w), packed?.matrix(w))
            }
            let next = i + 1 < mp.steps.count ? mp.steps[i + 1].op.layer : nil
            bound.append(Step(op: s.op, kernel: kernel, endsBlock: s.op.layer != nil && next != s.op.layer))
        }
        steps = bound
        var head: (WeightMatrix, PackedMatrix?)?, norm: FloatBuffer?
        for s in bound {
            if case let .output(w, p) = s.kernel { head = (w, p) }
            if case let .outputNorm(w) = s.kernel { norm = w }
        }
        guard let head, let norm else { preconditionFailure("a plan without output_norm and output") }
        lmHead = head
        finalNorm = norm
    }

    deinit { positions.deallocate(); activationBlocks.deallocate() }

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
        // With an observer, validation and the positions are charged to the first op.
        let entered = observer != nil ? now() : 0
        try validate(batch)
        let T = batch.tokens.count
        logitsRowsReady = 0
        guard T > 0 else { return }
        for e in batch.entries {
            for i in 0 ..< e.count { positions[e.rowStart + i] = Int32(lengths[e.slot] + i) }
        }
        batch.tokens.withUnsafeBufferPointer { tokens in
            if let observer {
                // Ops are timed back to back: each one from the end of the previous one (the first
                // from entry), so the plan's own overhead is charged to the op it leads into and
                // nothing is lost.
                lastTimestamp = entered
                for step in steps { runTimed(step, observer: observer, batch: batch, tokens: tokens, T: T) }
            } else {
                for step in steps { execute(step, batch: batch, tokens: tokens, T: T) }
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
    func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    var lastTimestamp: UInt64 = 0

    private func runTimed(_ step: Step, observer: ExecutionObserver, batch: Batch, tokens: UnsafeBufferPointer<Int32>, T: Int) {
        execute(step, batch: batch, tokens: tokens, T: T)
        let op = step.op
        if op.kind == .attnScores { return }   // the attention step records its own parts
        let t1 = now()
        // The final norm and the LM head run only on the rows that need logits.
        let rows = op.kind == .output || op.kind == .outputNorm ? batch.logitsRows : T
        observer.record(kind: op.kind, layer: op.layer, rows: rows, pairs: 0, start: lastTimestamp, duration: t1 - lastTimestamp)
        lastTimestamp = t1
    }

    @inline(__always)
    func buffer(_ s: Slot) -> FloatBuffer { buffers[s.rawValue] }

    /// `[T, width]` view of a slot's buffer.
    @inline(__always)
    func rows(_ s: Slot, _ T: Int) -> Matrix { buffers[s.rawValue].matrix(rows: T, cols: widths[s.rawValue]) }

    private func execute(_ step: Step, batch: Batch, tokens: UnsafeBufferPointer<Int32>, T: Int) {
        let E = c.embeddingLength
        switch step.kernel {
        case let .embed(table, scale):
            let x = rows(.residual, T)
            Ops.embed(tokens: tokens.baseAddress!, count: T, table: table, into: x)
            if scale != 1 { Ops.scale(x, rows: T, by: scale) }
        case let .norm(weight, from, to):
            let x = rows(from, T), y = rows(to, T)
            byRows(T) { r in Ops.rmsNorm(x: x.rows(r), weight: weight, eps: c.rmsEpsilon, y: y.rows(r)) }
        case let .headNorm(weight, slot, heads):
            let x = rows(slot, T), hd = c.headDim
            byRows(T) { r in Ops.headNorm(x: x.rows(r), heads: heads, width: hd, weight: weight, eps: c.rmsEpsilon) }
        case let .linear(weight, packedWeight, bias, from, to, accumulate, sameBlocks):
            let out = to.count == 1 ? rows(to[0], T) : rows(.fused, T)
            linear(rows(from, T), weight, packedWeight, Matrix(base: out.base, rows: T, cols: weight.rows, stride: out.stride), accumulate: accumulate,
                   blocksReady: sameBlocks)
            if let bias { Ops.addBias(x: Matrix(base: out.base, rows: T, cols: weight.rows, stride: out.stride), bias: bias) }
            if to.count > 1 {
                // A fused projection: its columns, in order, to each output.
                var col = 0
                for s in to {
                    let dst = rows(s, T)
                    Ops.copyRows(from: Matrix(base: out.base + col, rows: T, cols: dst.cols, stride: out.stride), rows: 0 ..< T, to: dst, at: 0)
                    col += dst.cols
                }
            }
        case let .rope(table):
            let q = rows(.q, T), k = rows(.k, T)
            byRows(T) { r in
                Ops.rope(x: q.rows(r), heads: c.headCount, headDim: c.headDim, positions: positions + r.lowerBound, table: table)
                Ops.rope(x: k.rows(r), heads: c.headCountKV, headDim: c.headDim, positions: positions + r.lowerBound, table: table)
            }
        case let .storeKV(layer):
            // Sequences write disjoint slots, so they are spread over the threads (16 sequences
            // at decode: a row each; one long prompt stays on one thread).
            let k = buffer(.k).base, v = buffer(.v).base
            byRows(batch.entries.count) { range in
                for i in range {
                    let e = batch.entries[i]
                    guard e.count > 0 else { continue }
                    cache.store(layer: layer, slot: e.slot, start: lengths[e.slot], rows: e.count,
                                k: k + e.rowStart * c.kvDim, v: v + e.rowStart * c.kvDim)
                }
            }
        case let .attention(layer, scale):
            attention(layer: layer, scale: scale, batch: batch, T: T)
        case let .normAdd(weight, from, into):
            let x = rows(from, T), y = rows(into, T)
            byRows(T) { r in Ops.rmsNormAdd(x: x.rows(r), weight: weight, eps: c.rmsEpsilon, into: y.rows(r)) }
        case let .gated(activation):
            let g = rows(.gate, T), u = rows(.up, T)
            switch activation {
            case .silu: byRows(T) { r in Ops.swiglu(gate: g.rows(r), up: u.rows(r)) }
            case .geluTanh: byRows(T) { r in Ops.geglu(gate: g.rows(r), up: u.rows(r)) }
            }
        case let .outputNorm(weight):
            // Gather only the rows that need logits, normalising as they are copied.
            let src = rows(.residual, T)
            var out = 0
            for e in batch.entries {
                let range: Range<Int>
                switch e.logits {
                case .none: continue
                case .last:
                    guard e.count > 0 else { continue }   // an empty entry has no last row
                    range = (e.rowStart + e.count - 1) ..< (e.rowStart + e.count)
                case .all: range = e.rowStart ..< e.rowStart + e.count
                }
                if range.isEmpty { continue }
                let n = range.count
                Ops.rmsNorm(x: Matrix(base: src.row(range.lowerBound), rows: n, cols: E, stride: E), weight: weight,
                            eps: c.rmsEpsilon, y: xOut.matrix(offset: out * E, rows: n, cols: E))
                out += n
            }
        case let .output(weight, packedWeight):
            let L = batch.logitsRows
            if L > 0 {
                linear(xOut.matrix(rows: L, cols: E), weight, packedWeight, logitsBuf.matrix(rows: L, cols: c.vocabSize))
            }
        }
        if step.endsBlock, let lens = logitLens, let e = batch.entries.first(where: { $0.logits != .none && $0.count > 0 }) {
            // What the model would predict if it stopped here: the same norm and LM head.
            let row = e.rowStart + e.count - 1, l = step.op.layer!
            Ops.rmsNorm(x: Matrix(base: rows(.residual, T).row(row), rows: 1, cols: E, stride: E), weight: finalNorm,
                        eps: c.rmsEpsilon, y: lens.normed.matrix(rows: 1, cols: E))
            linear(lens.normed.matrix(rows: 1, cols: E), lmHead.0, lmHead.1,
                   lens.buffer.matrix(offset: l * c.vocabSize, rows: 1, cols: c.vocabSize))
        }
    }

    /// Runs a row-wise op (norm, RoPE, activation) over rows `0 ..< T`: on the simd backend split
    /// across the pool's threads, each row computed exactly as it would be alone; else in one go.
    @inline(__always)
    private func byRows(_ T: Int, _ body: (Range<Int>) -> Void) {
        guard backend == .simd, threads > 1, T > 1 else { body(0 ..< T); return }
        ThreadPool.shared.run(parts: min(threads, T)) { t, n in body(T * t / n ..< T * (t + 1) / n) }
    }

    /// `out = a · Wᵀ (+ out)` with `W: [out.cols × a.cols]`: the packed kernel when the context
    /// has packed weights (`simd`), else the backend's GEMM on the weights as stored.
    @inline(__always)
    private func linear(_ a: Matrix, _ weight: WeightMatrix, _ packedWeight: PackedMatrix?, _ out: Matrix, accumulate: Bool = false,
                        blocksReady: Bool = false) {
        if let packedWeight {
            PackedGEMM.parallel(a: a, w: packedWeight, c: out, accumulate: accumulate, threads: threads,
                                scratch: weightScratch.base, stride: weightScratchStride, activationBlocks: activationBlocks,
                                blocksReady: blocksReady)
        } else {
            GEMM.run(backend, a: a, weight: weight, c: out, accumulate: accumulate,
                     scratch: weightScratch.base, scratchFloats: weightScratchStride)
        }
    }
}
