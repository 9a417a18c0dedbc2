import Dispatch

/// One sequence while it generates: its seeded sampler, streaming detokenizer, stop strings,
/// output and timings. `Generator` (one sequence) and `BatchRunner` (many) share it, so a sequence
/// is decided the same way alone or in a batch.
final class SequenceState {
    let promptIds: [Int32]
    let parameters: GenerationParameters
    let sampler: Sampler
    private var decoder: StreamingDecoder?
    private var stops: StopMatcher
    private let endOfGeneration: Set<Int32>
    private var wantsLogprobs: Bool { parameters.logprobs || parameters.topLogprobs > 0 }
    /// Every sampled token, the last one included.
    private(set) var ids: [Int32] = []
    private var text = ""
    private var logprobs: [Float] = []
    private var tops: [[TokenLogprob]] = []
    private let start: UInt64
    private var promptDone: UInt64 = 0
    private var firstToken: UInt64 = 0
    /// Prompt tokens whose keys and values were already in the cache (not computed again).
    var cachedPromptTokens: Int

    init(promptIds: [Int32], parameters: GenerationParameters, vocabularySize: Int, tokenizer: Tokenizer?,
         cachedPromptTokens: Int = 0) {
        start = DispatchTime.now().uptimeNanoseconds
        self.cachedPromptTokens = cachedPromptTokens
        self.promptIds = promptIds
        self.parameters = parameters
        sampler = Sampler(parameters: parameters.sampling, vocabularySize: vocabularySize)
        for t in promptIds { sampler.accept(t) }
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
        stops = StopMatcher(parameters.stop)
        endOfGeneration = parameters.ignoreEOS ? [] : (tokenizer?.endOfGeneration ?? [])
        // A limit, not a size: never reserve more than a modest start (a line may ask for 10^14).
        ids.reserveCapacity(min(parameters.maxTokens, 4096))
    }

    /// Chooses the next token from `logits` and records it. Returns its event and, when generation
    /// ends with it, why: an end-of-generation token, a stop string, or `maxTokens`. (A full
    /// context and cancellation are the caller's to decide.)
    func next(_ logits: UnsafeBufferPointer<Float>) -> (TokenEvent, FinishReason?) {
        if promptDone == 0 { promptDone = DispatchTime.now().uptimeNanoseconds }
        let token = sampler.sample(logits)
        var lp = Float.nan
        var top: [TokenLogprob] = []
        if wantsLogprobs {
            (_, lp, top) = Generator.logprobs(logits, chosen: token, top: parameters.topLogprobs)
            logprobs.append(lp)
            tops.append(top)
        }
        if firstToken == 0 { firstToken = DispatchTime.now().uptimeNanoseconds }
        ids.append(token)
        sampler.accept(token)
        if endOfGeneration.contains(token) {
            return (TokenEvent(token: token, text: "", logprob: lp, top: top), .eos)
        }
        var piece = "", stopped = false
        if decoder != nil {
            (piece, stopped) = stops.feed(decoder!.append(token))
            text += piece
        }
        let event = TokenEvent(token: token, text: piece, logprob: lp, top: top)
        if stopped { return (event, .stop) }
        return (event, ids.count >= parameters.maxTokens ? .length : nil)
    }

    /// Ends the sequence: text still held back (an incomplete character, a partial stop string) is
    /// emitted as a final event with token -1, unless an end token or stop string ended it.
    func finish(_ reason: FinishReason, emit: (TokenEvent) -> Void) -> GenerationResult {
        if reason != .stop && reason != .eos, decoder != nil {
            let rest = stops.feed(decoder!.flush()).emit + stops.flush()
            if !rest.isEmpty {
                text += rest
                emit(TokenEvent(token: -1, text: rest, logprob: .nan, top: []))
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        let prompt = promptDone == 0 ? end : promptDone
        var t = GenerationTimings()
        t.promptTokens = promptIds.count
        t.cachedPromptTokens = cachedPromptTokens
        t.promptSeconds = Double(prompt - start) / 1e9
        t.generatedTokens = ids.count
        t.generationSeconds = Double(end - max(firstToken, prompt)) / 1e9
        t.timeToFirstToken = Double((firstToken == 0 ? end : firstToken) - start) / 1e9
        return GenerationResult(promptIds: promptIds, ids: ids, text: text, finishReason: reason, timings: t,
                                seed: sampler.seed, logprobs: logprobs, topLogprobs: tops)
    }
}
