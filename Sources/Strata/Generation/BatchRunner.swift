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

    /// A running request: its slot and state.
    private final class Running {
        let id: String
        let slot: Int
        let state: SequenceState
        var prefilled = 0

        init(_ r: BatchRequest, slot: Int, vocab: Int, tokenizer: Tokenizer?) {
            id = r.id
            self.slot = slot
            state = SequenceState(promptIds: r.promptIds, parameters: r.parameters, vocabularySize: vocab, tokenizer: tokenizer)
        }

        var prompt: [Int32] { state.promptIds }
        var prefilling: Bool { prefilled < prompt.count }
    }

    public init(context: InferenceContext, tokenizer: Tokenizer?) {
        self.context = context
        self.tokenizer = tokenizer
    }

    /// Runs until every admitted sequence has finished and `next` has nothing more. `next` is asked
    /// again at every step while a slot is free, so a request that becomes available while others
    /// decode (a server's, say) joins the very next step; nil means "nothing now", not "never".
    /// `onToken` sees each
    /// token as it is chosen; `onFinish` each request's outcome (an error for a request that cannot
    /// run, such as a prompt longer than the context: the others go on). `shouldStop` is polled
    /// once per step; when it returns true, running sequences finish as `cancelled`. `isCancelled`
    /// is asked per sequence after each of its tokens: true ends that one as `cancelled`.
    public func run(next: () -> BatchRequest?,
                    onToken: ((String, TokenEvent) -> Void)? = nil,
                    onFinish: (String, Result<GenerationResult, Error>) -> Void,
                    shouldStop: () -> Bool = { false },
                    isCancelled: (String) -> Bool = { _ in false },
                    onStep: ((Int) -> Void)? = nil) throws {
        var free = Array((0 ..< context.slots).reversed())
        var running: [Running] = []
        var batch = Batch(capacity: context.maxBatchTokens)
        var rowOf: [(Running, Int)] = []
        rowOf.reserveCapacity(context.slots)
        let budget = context.maxBatchTokens

        func admit() {
            while let slot = free.last {
                guard let r = next() else { return }
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
                running.append(Running(r, slot: slot, vocab: context.vocabSize, tokenizer: tokenizer))
            }
        }

        func finish(_ s: Running, _ reason: FinishReason) {
            let result = s.state.finish(reason) { onToken?(s.id, $0) }
            onFinish(s.id, .success(result))
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
                rowOf.append((s, batch.add(slot: s.slot, token: s.state.ids.last!)))
            }
            // 2. Prefill chunks, oldest first, within the remaining budget.
            var room = budget - batch.tokens.count
            for s in running where s.prefilling && room > 0 {
                let p = s.prompt
                let n = min(room, p.count - s.prefilled)
                let completes = s.prefilled + n == p.count
                let row = batch.add(slot: s.slot, tokens: p[s.prefilled ..< s.prefilled + n], logits: completes ? .last : .none)
                s.prefilled += n
                room -= n
                if completes { rowOf.append((s, row)) }
            }
            try context.evaluate(batch)
            onStep?(running.count)

            // 3. Sample each sequence that has logits, and decide whether it goes on.
            let t0 = observer != nil ? DispatchTime.now().uptimeNanoseconds : 0
            var finished: [ObjectIdentifier] = []
            for (s, row) in rowOf {
                let (event, ended) = context.withLogits(row: row) { s.state.next($0) }
                onToken?(s.id, event)
                if let reason = ended ?? (context.lengths[s.slot] >= context.contextLength ? .length : nil)
                    ?? (isCancelled(s.id) ? .cancelled : nil) {
                    finish(s, reason)
                    finished.append(ObjectIdentifier(s))
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
