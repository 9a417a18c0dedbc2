/// How the next token is chosen. Defaults are llama.cpp's.
///
/// The chain, in order: logit bias → repetition, frequency and presence penalties over the last
/// `repeatLastN` tokens → top-k → top-p → min-p → temperature → a draw from the distribution
/// (or, at temperature 0, the argmax after bias and penalties).
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// Divides the logits before the draw; 0 means greedy (argmax).
    public var temperature: Float = 0.8
    /// Keep the k most likely tokens (0: all).
    public var topK: Int = 40
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 0.95
    /// Drop tokens less likely than minP × the most likely one's probability (0: none).
    public var minP: Float = 0.05
    /// Logits of recent tokens: positive ones divided by it, negative ones multiplied (1: off).
    public var repeatPenalty: Float = 1.0
    /// How many recent tokens the penalties look at (0: none; -1: the whole context).
    public var repeatLastN: Int = 64
    /// Subtracted from a recent token's logit once per occurrence.
    public var frequencyPenalty: Float = 0
    /// Subtracted from a recent token's logit once if it occurs at all.
    public var presencePenalty: Float = 0
    /// Added to the logits of the given tokens.
    public var logitBias: [Int32: Float] = [:]
    /// Seed of the sampler's random generator (nil: random, reported after the run).
    public var seed: UInt64? = nil

    public init() {}

    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    /// Rejects values outside each parameter's domain, naming the parameter.
    public func validate() throws {
        func fail(_ s: String) -> SamplingError { SamplingError.invalidParameter(s) }
        guard temperature.isFinite, temperature >= 0 else { throw fail("temperature must be a finite number ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw fail("top-k must be ≥ 0, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw fail("top-p must be in (0, 1], got \(topP)") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw fail("min-p must be in [0, 1], got \(minP)") }
        guard repeatPenalty.isFinite, repeatPenalty > 0 else { throw fail("repeat-penalty must be a finite number > 0, got \(repeatPenalty)") }
        guard repeatLastN >= -1 else { throw fail("repeat-last-n must be ≥ -1, got \(repeatLastN)") }
        guard frequencyPenalty.isFinite else { throw fail("frequency-penalty must be finite") }
        guard presencePenalty.isFinite else { throw fail("presence-penalty must be finite") }
        for (id, b) in logitBias where !b.isFinite && b != -.infinity {
            throw fail("logit bias for token \(id) must be finite or -inf")
        }
    }
}

public enum SamplingError: Error, Equatable, CustomStringConvertible {
    case invalidParameter(String)
    public var description: String {
        switch self { case let .invalidParameter(s): s }
    }
}
