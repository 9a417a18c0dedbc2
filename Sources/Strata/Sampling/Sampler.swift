import Foundation

/// A candidate token during sampling.
public struct Candidate: Sendable, Equatable {
    public var id: Int32
    public var logit: Float
    /// Probability after the last softmax (set by top-p and by `probabilities()`).
    public var p: Float
}

/// The sampler chain over a candidate array, with a seeded random generator it owns.
/// Buffers are allocated once (vocabulary-sized) and reused for every token.
public final class Sampler {
    public let parameters: SamplingParameters
    /// The seed actually used (the given one, or the one drawn when none was given).
    public let seed: UInt64
    private var rng: Xoshiro256
    private(set) var candidates: [Candidate]
    private var history: [Int32] = []
    private var counts: [Int32]

    public init(parameters: SamplingParameters, vocabularySize: Int) {
        self.parameters = parameters
        seed = parameters.seed ?? UInt64.random(in: 0 ... UInt64.max)
        rng = Xoshiro256(seed: seed)
        candidates = []
        candidates.reserveCapacity(vocabularySize)
        counts = [Int32](repeating: 0, count: vocabularySize)
    }

    /// Records a token that became part of the context (prompt or generated), for the penalties.
    public func accept(_ token: Int32) {
        history.append(token)
        // -1 (every token counts): the context bounds the history. Otherwise trim it in batches,
        // written so that no window size can overflow.
        let keep = parameters.repeatLastN
        if keep >= 0, history.count - 1024 > keep { history.removeFirst(history.count - keep) }
    }

    /// Clears the penalty history.
    public func resetHistory() { history.removeAll(keepingCapacity: true) }

    /// Chooses the next token from the logits.
    public func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        let p = parameters
        if p.temperature <= 0, p.logitBias.isEmpty, !penalizes, logits.count > 0 {
            // Plain greedy: the vectorised argmax, without building the candidate list.
            return Int32(SIMDMath.argmax(logits.baseAddress!, logits.count))
        }
        process(logits)
        return select()
    }

    /// Runs the processors (bias, penalties, top-k, top-p, min-p, temperature) and returns the
    /// surviving candidates with renormalised probabilities, most likely first. At temperature 0
    /// only the argmax survives.
    public func distribution(_ logits: UnsafeBufferPointer<Float>) -> [Candidate] {
        process(logits)
        if parameters.temperature > 0 { softmax() } else { candidates[0].p = 1 }
        return candidates
    }

    // MARK: - Processors

    func process(_ logits: UnsafeBufferPointer<Float>) {
        let p = parameters
        candidates.removeAll(keepingCapacity: true)
        for i in 0 ..< logits.count { candidates.append(Candidate(id: Int32(i), logit: logits[i], p: 0)) }
        for (id, b) in p.logitBias where id >= 0 && Int(id) < candidates.count { candidates[Int(id)].logit += b }
        applyPenalties()
        // A token biased to -inf can never be drawn: drop it (keeping at least one candidate).
        if p.logitBias.values.contains(-.infinity) {
            candidates.removeAll { $0.logit == -.infinity }
            if candidates.isEmpty { candidates.append(Candidate(id: 0, logit: 0, p: 1)) }
        }
        if p.temperature <= 0 {
            var best = 0
            for i in 1 ..< candidates.count where candidates[i].logit > candidates[best].logit { best = i }
            candidates.swapAt(0, best)
            candidates.removeSubrange(1...)
            return
        }
        topK(p.topK)
        topP(p.topP)
        minP(p.minP)
        if p.temperature != 1 { for i in candidates.indices { candidates[i].logit /= p.temperature } }
    }

    /// Whether any repetition penalty is active.
    private var penalizes: Bool {
        let p = parameters
        return (p.repeatPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0) && p.repeatLastN != 0
    }

    private func applyPenalties() {
        let p = parameters
        guard penalizes else { return }
        let window = p.repeatLastN < 0 ? history[...] : history.suffix(p.repeatLastN)
        for t in window where Int(t) < counts.count { counts[Int(t)] += 1 }
        for t in window where Int(t) < counts.count {
            let c = counts[Int(t)]
            guard c > 0 else { continue }   // already applied for this token
            var l = candidates[Int(t)].logit
            if p.repeatPenalty != 1 { l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty }
            l -= Float(c) * p.frequencyPenalty + p.presencePenalty
            candidates[Int(t)].logit = l
            counts[Int(t)] = 0
        }
    }

    /// Keeps the k largest logits, sorted descending (k = 0: all, sorted).
    private func topK(_ k: Int) {
        let n = candidates.count
        if k > 0 && k < n {
            // Partial selection: move the k largest to the front, then sort them.
            var lo = 0, hi = n - 1
            while lo < hi {
                let pivot = candidates[(lo + hi) / 2].logit
                var i = lo, j = hi
                while i <= j {
                    while candidates[i].logit > pivot { i += 1 }
                    while candidates[j].logit < pivot { j -= 1 }
                    if i <= j { candidates.swapAt(i, j); i += 1; j -= 1 }
                }
                if k - 1 <= j { hi = j } else if k - 1 >= i { lo = i } else { break }
            }
            candidates.removeSubrange(k...)
        }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
    }

    /// Softmax over the current candidates (sorted descending, so the max is the first).
    private func softmax() {
        let maxl = candidates[0].logit
        var sum: Double = 0
        for i in candidates.indices {
            let e = Foundation.exp(Double(candidates[i].logit - maxl))
            candidates[i].p = Float(e)
            sum += e
        }
        let inv = Float(1 / sum)
        for i in candidates.indices { candidates[i].p *= inv }
    }

    private func topP(_ p: Float) {
        guard p < 1 else { return }
        softmax()
        var cum: Float = 0
        for i in candidates.indices {
            cum += candidates[i].p
            if cum >= p { candidates.removeSubrange((i + 1)...); return }
        }
    }

    private func minP(_ p: Float) {
        guard p > 0, let first = candidates.first else { return }
        // p_i ≥ p · p_max  ⇔  logit_i ≥ logit_max + ln p
        let threshold = first.logit + Foundation.log(p)
        var keep = 1
        while keep < candidates.count && candidates[keep].logit >= threshold { keep += 1 }
        candidates.removeSubrange(keep...)
    }

    // MARK: - Selector

    private func select() -> Int32 {
        if candidates.count == 1 || parameters.temperature <= 0 { return candidates[0].id }
        softmax()
        let u = rng.nextUnitFloat()
        var cum: Float = 0
        for c in candidates {
            cum += c.p
            if u < cum { return c.id }
        }
        return candidates[candidates.count - 1].id
    }
}
