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
    /// cached prefix (at least the last token is always evaluated, for its logits). Returns how
    /// many tokens were reused.
    @discardableResult
    public func prefill(_ ids: [Int32], slot: Int = 0, reuseCache: Bool) throws -> Int {
        guard !ids.isEmpty else { throw InferenceError.emptyPrompt }
        guard ids.count <= context.contextLength else {
            throw InferenceError.promptTooLong(tokens: ids.count, contextLength: context.contextLength)
        }
        for t in ids where t < 0 || Int(t) >= context.vocabSize {
            throw InferenceError.tokenOutOfRange(id: t, vocabSize: context.vocabSize)
        }
        // Another user of the context (a batch runner) may have overwritten the slots since.
        if !context.claim(by: self) { for s in cachedIds.indices { cachedIds[s].removeAll() } }
        var keep = 0
        if reuseCache {
            let cached = cachedIds[slot]
            while keep < min(cached.count, ids.count - 1) && cached[keep] == ids[keep] { keep += 1 }
        }
        context.truncate(slot: slot, to: keep)
        cachedIds[slot].removeSubrange(keep...)
        try context.prefill(ids[keep...], slot: slot)
        cachedIds[slot].append(contentsOf: ids[keep...])
        return keep
    }

    /// Generates from `promptIds`. `onToken` is called for each token; returning false cancels.
    public func generate(promptIds: [Int32], parameters: GenerationParameters, slot: Int = 0, reuseCache: Bool = false,
                         onToken: (TokenEvent) -> Bool = { _ in true }) throws -> GenerationResult {
        try parameters.validate()
        let state = SequenceState(promptIds: promptIds, parameters: parameters, vocabularySize: context.vocabSize, tokenizer: tokenizer)
        state.cachedPromptTokens = try prefill(promptIds, slot: slot, reuseCache: reuseCache)
        while true {
            let (event, ended) = context.withLogits(row: 0) { state.next($0) }
            let keepGoing = onToken(event)
            if let reason = ended ?? (keepGoing ? nil : .cancelled)
                ?? (context.lengths[slot] >= context.contextLength ? .length : nil) {
                return state.finish(reason) { _ = onToken($0) }
            }
            batch.removeAll()
            batch.add(slot: slot, token: event.token)
            try context.evaluate(batch)
            cachedIds[slot].append(event.token)
        }
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
