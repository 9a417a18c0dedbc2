import Dispatch
import Foundation

/// Runs prompts through an `InferenceContext` and samples tokens one at a time. Keeps, per slot,
/// the ids held in the KV cache, so that a follow-up prompt that extends them (the next chat turn)
/// only prefills its new tokens.
public final class Generator {
    public let model: Model
    public let tokenizer: Tokenizer?
    public let context: InferenceContext
    /// Ids whose keys and values are in each slot of the cache.
    public private(set) var cachedIds: [[Int32]]
    private var batch: Batch

    public init(model: Model, tokenizer: Tokenizer?, context: InferenceContext) {
        self.model = model
        self.tokenizer = tokenizer
        self.context = context
        cachedIds = Array(repeating: [], count: context.slots)
        batch = Batch(capacity: context.maxBatchTokens)
    }

    /// Ids that end generation.
    public var endOfGeneration: Set<Int32> { tokenizer?.endOfGeneration ?? [] }

    /// Forgets a slot's cache.
    public func reset(slot: Int = 0) {
        context.reset(slot: slot)
        cachedIds[slot].removeAll()
    }

    /// Makes the slot hold exactly `ids` with logits for the last one in row 0, reusing the longest
    /// cached prefix (at least the last token is always evaluated, for its logits).
    public func prefill(_ ids: [Int32], slot: Int = 0, reuseCache: Bool) throws {
        guard !ids.isEmpty else { throw InferenceError.emptyPrompt }
        guard ids.count <= context.contextLength else {
            throw InferenceError.promptTooLong(tokens: ids.count, contextLength: context.contextLength)
        }
        for t in ids where t < 0 || Int(t) >= context.vocabSize {
            throw InferenceError.tokenOutOfRange(id: t, vocabSize: context.vocabSize)
        }
        var keep = 0
        if reuseCache {
            let cached = cachedIds[slot]
            while keep < min(cached.count, ids.count - 1) && cached[keep] == ids[keep] { keep += 1 }
        }
        context.truncate(slot: slot, to: keep)
        cachedIds[slot].removeSubrange(keep...)
        try context.prefill(ids[keep...], slot: slot)
        cachedIds[slot].append(contentsOf: ids[keep...])
    }

    /// Generates from `promptIds`. `onToken` is called for each token; returning false cancels.
    public func generate(promptIds: [Int32], parameters: GenerationParameters, slot: Int = 0, reuseCache: Bool = false,
                         onToken: (TokenEvent) -> Bool = { _ in true }) throws -> GenerationResult {
        try parameters.validate()
        let start = DispatchTime.now().uptimeNanoseconds
        try prefill(promptIds, slot: slot, reuseCache: reuseCache)
        let promptDone = DispatchTime.now().uptimeNanoseconds

        let sampler = Sampler(parameters: parameters.sampling, vocabularySize: context.vocabSize)
        for t in promptIds { sampler.accept(t) }
        var decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
        var stops = StopMatcher(parameters.stop)
        let eog = parameters.ignoreEOS ? [] : endOfGeneration
        var ids: [Int32] = []
        ids.reserveCapacity(parameters.maxTokens)
        var text = ""
        var logprobs: [Float] = []
        var tops: [[TokenLogprob]] = []
        var finish = FinishReason.length
        var firstTokenAt: UInt64 = 0

        while true {
            let (token, lp, top) = context.withLogits(row: 0) { logits -> (Int32, Float, [TokenLogprob]) in
                let t = sampler.sample(logits)
                guard parameters.logprobs || parameters.topLogprobs > 0 else { return (t, .nan, []) }
                return Self.logprobs(logits, chosen: t, top: parameters.topLogprobs)
            }
            if firstTokenAt == 0 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            ids.append(token)
            sampler.accept(token)
            if parameters.logprobs || parameters.topLogprobs > 0 { logprobs.append(lp); tops.append(top) }

            var piece = ""
            var stopped = false
            let isEOG = eog.contains(token)
            if !isEOG, decoder != nil {
                (piece, stopped) = stops.feed(decoder!.append(token))
                text += piece
            }
            let keepGoing = onToken(TokenEvent(token: token, text: piece, logprob: lp, top: top))
            if isEOG { finish = .eos; break }
            if stopped { finish = .stop; break }
            if !keepGoing { finish = .cancelled; break }
            if ids.count >= parameters.maxTokens { finish = .length; break }
            if context.lengths[slot] >= context.contextLength { finish = .length; break }

            batch.removeAll()
            batch.add(slot: slot, token: token)
            try context.evaluate(batch)
            cachedIds[slot].append(token)
        }
        if finish != .stop && finish != .eos, decoder != nil {
            let rest = stops.feed(decoder!.flush()).emit + stops.flush()
            if !rest.isEmpty {
                text += rest
                _ = onToken(TokenEvent(token: -1, text: rest, logprob: .nan, top: []))
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        var timings = GenerationTimings()
        timings.promptTokens = promptIds.count
        timings.promptSeconds = Double(promptDone - start) / 1e9
        timings.generatedTokens = ids.count
        timings.generationSeconds = Double(end - max(firstTokenAt, promptDone)) / 1e9
        timings.timeToFirstToken = Double(firstTokenAt - start) / 1e9
        return GenerationResult(promptIds: promptIds, ids: ids, text: text, finishReason: finish, timings: timings,
                                seed: sampler.seed, logprobs: logprobs, topLogprobs: tops)
    }

    /// Log-softmax of the chosen token and the `top` most likely ones.
    static func logprobs(_ logits: UnsafeBufferPointer<Float>, chosen: Int32, top: Int) -> (Int32, Float, [TokenLogprob]) {
        var maxl = -Float.infinity
        for l in logits where l > maxl { maxl = l }
        var sum: Double = 0
        for l in logits { sum += Foundation.exp(Double(l - maxl)) }
        let logZ = Float(Foundation.log(sum)) + maxl
        var best: [TokenLogprob] = []
        if top > 0 {
            var heap: [(Float, Int32)] = []
            for (i, l) in logits.enumerated() {
                if heap.count < top { heap.append((l, Int32(i))); if heap.count == top { heap.sort { $0.0 > $1.0 } } }
                else if l > heap[top - 1].0 {
                    var j = top - 1
                    heap[j] = (l, Int32(i))
                    while j > 0 && heap[j].0 > heap[j - 1].0 { heap.swapAt(j, j - 1); j -= 1 }
                }
            }
            heap.sort { $0.0 > $1.0 }
            best = heap.map { TokenLogprob(id: $0.1, logprob: $0.0 - logZ) }
        }
        return (chosen, logits[Int(chosen)] - logZ, best)
    }
}
