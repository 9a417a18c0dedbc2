import Dispatch
import Foundation

/// One request for the batch runner.
public struct BatchRequest: Sendable {
    public var id: String
    public var promptIds: [Int32]
    public var parameters: GenerationParameters
    public init(id: String, promptIds: [Int32], parameters: GenerationParameters) {
        self.id = id
        self.promptIds = promptIds
        self.parameters = parameters
    }
}

/// Continuous batching: keeps up to `slots` sequences running in one `InferenceContext`. Every
/// step carries one decode token for each running sequence plus prefill chunks of newly admitted
/// prompts, up to `maxBatchTokens` rows, so the weights are read once for the whole batch. When a
/// sequence finishes its slot is freed and the next request is admitted at once.
///
/// Each sequence samples with its own parameters and seed, exactly as it would alone.
public final class BatchRunner {
    public let context: InferenceContext
    public let tokenizer: Tokenizer?
    /// Timing hook for the whole run (the `sampling` op is reported here too).
    public var observer: ExecutionObserver? {
        didSet { context.observer = observer }
    }

    private final class Sequence {
        let request: BatchRequest
        let slot: Int
        var prefilled = 0
        var pending: Int32 = -1          // sampled, not yet evaluated
        var ids: [Int32] = []
        var text = ""
        var logprobs: [Float] = []
        var tops: [[TokenLogprob]] = []
        let sampler: Sampler
        var decoder: StreamingDecoder?
        var stops: StopMatcher
        let eog: Set<Int32>
        let start: UInt64
        var promptDone: UInt64 = 0
        var firstToken: UInt64 = 0

        init(_ r: BatchRequest, slot: Int, vocab: Int, tokenizer: Tokenizer?) {
            request = r
            self.slot = slot
            sampler = Sampler(parameters: r.parameters.sampling, vocabularySize: vocab)
            for t in r.promptIds { sampler.accept(t) }
            decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
            stops = StopMatcher(r.parameters.stop)
            eog = r.parameters.ignoreEOS ? [] : (tokenizer?.endOfGeneration ?? [])
            start = DispatchTime.now().uptimeNanoseconds
        }

        var prefilling: Bool { prefilled < request.promptIds.count }
    }

    public init(context: InferenceContext, tokenizer: Tokenizer?) {
        self.context = context
        self.tokenizer = tokenizer
    }

    /// Runs until `next` returns nil and every admitted sequence has finished. `onToken` sees each
    /// token as it is chosen; `onFinish` each request's outcome (an error for a request that cannot
    /// run, such as a prompt longer than the context: the others go on). `shouldStop` is polled
    /// once per step; when it returns true, running sequences finish as `cancelled`. `isCancelled`
    /// is asked per sequence after each of its tokens: true ends that one as `cancelled`.
    public func run(next: () -> BatchRequest?,
                    onToken: ((String, TokenEvent) -> Void)? = nil,
                    onFinish: (String, Result<GenerationResult, Error>) -> Void,
                    shouldStop: () -> Bool = { false },
                    isCancelled: (String) -> Bool = { _ in false }) throws {
        var free = Array((0 ..< context.slots).reversed())
        var running: [Sequence] = []
        var exhausted = false
        var batch = Batch(capacity: context.maxBatchTokens)
        var rowOf: [(Sequence, Int)] = []
        rowOf.reserveCapacity(context.slots)
        let budget = context.maxBatchTokens

        func admit() {
            while !exhausted, let slot = free.last {
                guard let r = next() else { exhausted = true; return }
                do {
                    try r.parameters.validate()
                    guard !r.promptIds.isEmpty else { throw InferenceError.emptyPrompt }
                    guard r.promptIds.count <= context.contextLength else {
                        throw InferenceError.promptTooLong(tokens: r.promptIds.count, contextLength: context.contextLength)
                    }
                    for t in r.promptIds where t < 0 || Int(t) >= context.vocabSize {
                        throw InferenceError.tokenOutOfRange(id: t, vocabSize: context.vocabSize)
                    }
                } catch {
                    onFinish(r.id, .failure(error))
                    continue
                }
                free.removeLast()
                context.reset(slot: slot)
                running.append(Sequence(r, slot: slot, vocab: context.vocabSize, tokenizer: tokenizer))
            }
        }

        func finish(_ s: Sequence, _ reason: FinishReason) {
            if reason != .stop && reason != .eos, s.decoder != nil {
                let rest = s.stops.feed(s.decoder!.flush()).emit + s.stops.flush()
                if !rest.isEmpty {
                    s.text += rest
                    onToken?(s.request.id, TokenEvent(token: -1, text: rest, logprob: .nan, top: []))
                }
            }
            let end = DispatchTime.now().uptimeNanoseconds
            var t = GenerationTimings()
            t.promptTokens = s.request.promptIds.count
            t.promptSeconds = Double(s.promptDone - s.start) / 1e9
            t.generatedTokens = s.ids.count
            t.generationSeconds = Double(end - max(s.firstToken, s.promptDone)) / 1e9
            t.timeToFirstToken = Double(s.firstToken - s.start) / 1e9
            onFinish(s.request.id, .success(GenerationResult(
                promptIds: s.request.promptIds, ids: s.ids, text: s.text, finishReason: reason, timings: t,
                seed: s.sampler.seed, logprobs: s.logprobs, topLogprobs: s.tops)))
            free.append(s.slot)
        }

        admit()
        while !running.isEmpty {
            if shouldStop() {
                for s in running { finish(s, .cancelled) }
                running.removeAll()
                break
            }
            // 1. One decode row per running sequence.
            batch.removeAll()
            rowOf.removeAll(keepingCapacity: true)
            for s in running where !s.prefilling {
                rowOf.append((s, batch.add(slot: s.slot, token: s.pending)))
            }
            // 2. Prefill chunks, oldest first, within the remaining budget.
            var room = budget - batch.tokens.count
            for s in running where s.prefilling && room > 0 {
                let p = s.request.promptIds
                let n = min(room, p.count - s.prefilled)
                let completes = s.prefilled + n == p.count
                let row = batch.add(slot: s.slot, tokens: p[s.prefilled ..< s.prefilled + n], logits: completes ? .last : .none)
                s.prefilled += n
                room -= n
                if completes { rowOf.append((s, row)) }
            }
            try context.evaluate(batch)

            // 3. Sample each sequence that has logits, and decide whether it goes on.
            let t0 = observer != nil ? DispatchTime.now().uptimeNanoseconds : 0
            var finished: [ObjectIdentifier] = []
            for (s, row) in rowOf {
                let now = DispatchTime.now().uptimeNanoseconds
                if s.promptDone == 0 { s.promptDone = now }
                if s.pending >= 0 { s.ids.append(s.pending) } // it is in the cache now
                let p = s.request.parameters
                let (token, lp, top) = context.withLogits(row: row) { logits -> (Int32, Float, [TokenLogprob]) in
                    let t = s.sampler.sample(logits)
                    guard p.logprobs || p.topLogprobs > 0 else { return (t, .nan, []) }
                    return Generator.logprobs(logits, chosen: t, top: p.topLogprobs)
                }
                if s.firstToken == 0 { s.firstToken = DispatchTime.now().uptimeNanoseconds }
                s.sampler.accept(token)
                if p.logprobs || p.topLogprobs > 0 { s.logprobs.append(lp); s.tops.append(top) }
                var piece = ""
                var stopped = false
                let isEOG = s.eog.contains(token)
                if !isEOG, s.decoder != nil {
                    (piece, stopped) = s.stops.feed(s.decoder!.append(token))
                    s.text += piece
                }
                onToken?(s.request.id, TokenEvent(token: token, text: piece, logprob: lp, top: top))
                var reason: FinishReason?
                if isEOG { reason = .eos }
                else if stopped { reason = .stop }
                else if s.ids.count + 1 >= p.maxTokens { reason = .length }
                else if context.lengths[s.slot] >= context.contextLength { reason = .length }
                else if isCancelled(s.request.id) { reason = .cancelled }
                if let reason {
                    s.ids.append(token)
                    finish(s, reason)
                    finished.append(ObjectIdentifier(s))
                } else {
                    s.pending = token
                }
            }
            if let observer {
                let t1 = DispatchTime.now().uptimeNanoseconds
                observer.record(kind: .sampling, layer: nil, rows: rowOf.count, pairs: 0, start: t0, duration: t1 - t0)
            }
            if !finished.isEmpty {
                let done = Set(finished)
                running.removeAll { done.contains(ObjectIdentifier($0)) }
            }
            admit()
        }
    }
}
