/// Everything about one generation request. One `Sendable` value.
public struct GenerationParameters: Sendable, Equatable {
    /// Most new tokens (≥ 1).
    public var maxTokens: Int = 256
    public var sampling = SamplingParameters()
    /// Generation ends when the text contains one of these (not emitted).
    public var stop: [String] = []
    /// Keep going past end-of-generation tokens.
    public var ignoreEOS = false
    /// Alternatives to report per step with their log-probabilities (0: only the chosen token's).
    public var topLogprobs: Int = 0
    /// Compute log-probabilities at all (costs a softmax over the vocabulary per token).
    public var logprobs = false

    public init() {}

    public static let maxStopStrings = 16
    public static let maxStopBytes = 1024

    public func validate() throws {
        guard maxTokens >= 1 else { throw SamplingError.invalidParameter("max-tokens must be ≥ 1, got \(maxTokens)") }
        guard topLogprobs >= 0 else { throw SamplingError.invalidParameter("logprobs must be ≥ 0, got \(topLogprobs)") }
        // Stop strings are matched against held-back text on the decoding thread: keep them bounded.
        guard stop.count <= Self.maxStopStrings else {
            throw SamplingError.invalidParameter("at most \(Self.maxStopStrings) stop strings, got \(stop.count)")
        }
        if let long = stop.first(where: { $0.utf8.count > Self.maxStopBytes }) {
            throw SamplingError.invalidParameter("a stop string may be at most \(Self.maxStopBytes) bytes, got \(long.utf8.count)")
        }
        try sampling.validate()
    }
}

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-generation token was produced.
    case eos
    /// A stop string was produced.
    case stop
    /// `maxTokens` was reached, or the context is full.
    case length
    /// The consumer stopped listening.
    case cancelled
}

/// One generated token, or (with `token == -1`) the text that was still held back when generation
/// ended (an incomplete character, or the start of a stop string that never completed).
public struct TokenEvent: Sendable {
    public let token: Int32
    /// Text that became final with this token (may be empty: held back or an incomplete character).
    public let text: String
    /// Natural-log probability of the token under the model (NaN unless logprobs were requested).
    public let logprob: Float
    /// The most likely alternatives at this step, with their log-probabilities.
    public let top: [TokenLogprob]
}

public struct TokenLogprob: Sendable, Codable, Equatable {
    public let id: Int32
    public let logprob: Float
}

/// Timings of one generation, llama.cpp style.
public struct GenerationTimings: Sendable, Codable, Equatable {
    public var promptTokens = 0
    /// Of `promptTokens`, those whose keys and values were reused from the cache (not computed).
    public var cachedPromptTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    public var generationSeconds = 0.0
    /// From the start of the prompt evaluation to the first sampled token.
    public var timeToFirstToken = 0.0

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    /// Tokens after the first, per second of decoding.
    public var generationTokensPerSecond: Double {
        generationSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / generationSeconds : 0
    }
}

/// The outcome of a generation.
public struct GenerationResult: Sendable {
    public var promptIds: [Int32]
    /// Generated ids, including a final end-of-generation token when that ended it.
    public var ids: [Int32]
    /// Generated text, without the end-of-generation token or stop string.
    public var text: String
    public var finishReason: FinishReason
    public var timings: GenerationTimings
    /// The sampler seed used.
    public var seed: UInt64
    public var logprobs: [Float]
    public var topLogprobs: [[TokenLogprob]]
}
