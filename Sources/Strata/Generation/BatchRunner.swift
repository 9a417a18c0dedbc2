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

/// What one step of the batch runner did.
public struct BatchStep: Sendable, Equatable {
    /// Sequences running in the step (decoding or prefilling).
    public var sequences: Int
    /// Rows that decoded one token of a running sequence.
    public var decodeRows: Int
    /// Prompt tokens computed in the step (rows of prefill chunks).
    public var prefillRows: Int
    /// Positions held in the KV cache, all slots together (cached prefixes of idle slots included).
    public var cachedPositions: Int
    /// All positions of the KV cache: slots × context length.
    public var capacity: Int
}

/// Continuous batching: keeps up to `slots` sequences running in one `InferenceContext`. Every
/// step carries one decode token for each running sequence plus prefill chunks of newly admitted
/// prompts, up to `maxBatchTokens` rows, so the weights are read once for the whole batch. When a
/// sequence finishes its slot is freed and the next request is admitted at once.
///
/// Each sequence samples with its own parameters and seed, exactly as it would alone.
///
/// Prompt-cache reuse: a finished sequence leaves its tokens in its slot's KV cache. A new request
/// takes the free slot whose cached tokens share the longest prefix with its prompt and prefills
/// only the rest (a chat's next turn re-sends the whole conversation; only the new turn is
/// computed). A row's keys and values do not depend on the other rows of its step, so the answer
/// is the same, bit for bit, as without reuse.
public final class BatchRunner {
    public let context: InferenceContext
    public let tokenizer: Tokenizer?
    /// Timing hook for the whole run (the `sampling` op is reported here too).
    public var observer: ExecutionObserver? {
        didSet { context.observer = observer }
    }

    /// Reuse cached prompt prefixes across requests (on by default).
    public var reusePrefixes = true
    /// Ids whose keys and values each slot holds (what a later request can reuse).
    public private(set) var cachedIds: [[Int32]]

    /// A running request: its slot and state.
    private final class Running {
        let id: String
        let slot: Int
        let state: SequenceState
        var prefilled: Int

        init(_ r: BatchRequest, slot: Int, cached: Int, vocab: Int, tokenizer: Tokenizer?) {
            id = r.id
            self.slot = slot
            prefilled = cached
            state = SequenceState(promptIds: r.promptIds, parameters: r.parameters, vocabularySize: vocab, tokenizer: tokenizer,
                                  cachedPromptTokens: cached)
        }

        var prompt: [Int32] { state.promptIds }
        var prefilling: Bool { prefilled < prompt.count }
    }

    public init(context: InferenceContext, tokenizer: Tokenizer?) {
        self.context = context
        self.tokenizer = tokenizer
        cachedIds = Array(repeating: [], count: context.slots)
    }

    /// The free slot to give a prompt and how many of its tokens that slot already holds: the
    /// longest cached prefix (at least the last prompt token is always computed, for its logits);
    /// among equals, the slot with the least cached (the others keep theirs for later requests).
    func chooseSlot(for prompt: [Int32], among free: [Int]) -> (slot: Int, cached: Int) {
        var best = (slot: free[free.count - 1], cached: 0)
        guard reusePrefixes else { return best }
        var bestSize = cachedIds[best.slot].count
        for slot in free.reversed() {
            let c = cachedIds[slot]
            let limit = min(c.count, prompt.count - 1)
            var n = 0
            while n < limit && c[n] == prompt[n] { n += 1 }
            if n > best.cached || (n == best.cached && c.count < bestSize) { best = (slot, n); bestSize = c.count }
        }
        return best
    }

    /// Runs until every admitted sequence has finished and `next` has nothing more. `next` is asked
    /// again at every step while a slot is free, so a request that becomes available while others
    /// decode (a server's, say) joins the very next step; nil means "nothing now", not "never".
    /// `onToken` sees each
    /// token as it is chosen; `onFinish` each request's outcome (an error for a request that cannot
    /// run, such as a prompt longer than the context: the others go on). `shouldStop` is polled
    /// once per step; when it returns true, running sequences finish as `cancelled`. `isCancelled`
    /// is asked for every running sequence before each step, prefilling ones included: true ends
    /// that one as `cancelled` and frees its slot for the step.
    public func run(next: () -> BatchRequest?,
                    onToken: ((String, TokenEvent) -> Void)? = nil,
                    onFinish: (String, Result<GenerationResult, Error>) -> Void,
                    shouldStop: () -> Bool = { false },
                    isCancelled: (String) -> Bool = { _ in false },
                    onStep: ((BatchStep) -> Void)? = nil) throws {
        // Another user of the context (a `Generator`) may have overwritten the slots since.
        if !context.claim(by: self) { for s in cachedIds.indices { cachedIds[s].removeAll() } }
        var free = Array((0 ..< context.slots).reversed())
        var running: [Running] = []
        var batch = Batch(capacity: context.maxBatchTokens)
        var rowOf: [(Running, Int)] = []
        rowOf.reserveCapacity(context.slots)
        let budget = context.maxBatchTokens

        func admit() {
            while !free.isEmpty {
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
                let (slot, cached) = chooseSlot(for: r.promptIds, among: free)
                free.removeAll { $0 == slot }
                context.truncate(slot: slot, to: min(cached, context.lengths[slot]))
                cachedIds[slot].removeSubrange(cached...)
                running.append(Running(r, slot: slot, cached: cached, vocab: context.vocabSize, tokenizer: tokenizer))
            }
        }

        func finish(_ s: Running, _ reason: FinishReason) {
            let result = s.state.finish(reason) { onToken?(s.id, $0) }
            // The slot keeps what it computed: the prompt and every token fed back (not the last).
            let held = context.lengths[s.slot]
            let all = s.prompt + s.state.ids
            cachedIds[s.slot] = Array(all.prefix(held))
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
            // Sequences whose consumer has gone end before the step (prefilling ones too).
            if running.contains(where: { isCancelled($0.id) }) {
                running.removeAll { s in
                    guard isCancelled(s.id) else { return false }
                    finish(s, .cancelled)
                    return true
                }
                admit()
                continue
            }
            // 1. One decode row per running sequence.
            batch.removeAll()
            rowOf.removeAll(keepingCapacity: true)
            for s in running where !s.prefilling {
                rowOf.append((s, batch.add(slot: s.slot, token: s.state.ids.last!)))
            }
            // 2. Prefill chunks, oldest first, within the remaining budget.
            var room = budget - batch.tokens.count
            var prefillRows = 0
            for s in running where s.prefilling && room > 0 {
                let p = s.prompt
                let n = min(room, p.count - s.prefilled)
                let completes = s.prefilled + n == p.count
                let row = batch.add(slot: s.slot, tokens: p[s.prefilled ..< s.prefilled + n], logits: completes ? .last : .none)
                s.prefilled += n
                room -= n
                prefillRows += n
                if completes { rowOf.append((s, row)) }
            }
            do { try context.evaluate(batch) } catch {
                // Whatever the slots hold now is not known to match their ids.
                for s in cachedIds.indices { cachedIds[s].removeAll() }
                throw error
            }
            if let onStep {
                onStep(BatchStep(sequences: running.count, decodeRows: budget - room - prefillRows, prefillRows: prefillRows,
                                 cachedPositions: context.lengths.reduce(0, +), capacity: context.slots * context.contextLength))
            }

            // 3. Sample each sequence that has logits, and decide whether it goes on.
            let t0 = observer != nil ? DispatchTime.now().uptimeNanoseconds : 0
            var finished: [ObjectIdentifier] = []
            for (s, row) in rowOf {
                let (event, ended) = context.withLogits(row: row) { s.state.next($0) }
                onToken?(s.id, event)
                if let reason = ended ?? (context.lengths[s.slot] >= context.contextLength ? .length : nil) {
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
