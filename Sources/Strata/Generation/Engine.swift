import Dispatch
import Foundation

/// What to generate from: text, a conversation rendered through the chat template, or ids.
public enum Prompt: Sendable {
    case text(String)
    case messages([ChatMessage])
    case ids([Int32])
}

/// The high-level API: load a model once, then generate (streaming or not). All work runs on one
/// serial queue that owns the inference context; the engine itself can be shared across tasks.
public final class Engine: @unchecked Sendable {
    public let model: Model
    public let tokenizer: Tokenizer
    public let options: ContextOptions
    /// Set when a chat template is detected or named; nil otherwise (text prompts still work).
    public let template: ChatTemplate?
    public let templateError: Error?
    private let generator: Generator
    private let queue = DispatchQueue(label: "strata.engine")

    public init(model: Model, options: ContextOptions = ContextOptions(), chatTemplate: String? = nil) throws {
        self.model = model
        self.options = options
        let tokenizer = try Tokenizer(gguf: model.gguf)
        self.tokenizer = tokenizer
        let eosText = tokenizer.eos.map { tokenizer.tokens[Int($0)] } ?? "</s>"
        do {
            if let name = chatTemplate {
                template = try ChatTemplate.named(name, eos: eosText)
            } else {
                template = try ChatTemplate.of(model, eos: eosText)
            }
            templateError = nil
        } catch let e as ChatTemplateError {
            if case .unknownName = e { throw e }
            template = nil
            templateError = e
        }
        generator = Generator(model: model, tokenizer: tokenizer, context: try InferenceContext(model: model, options: options))
    }

    public convenience init(modelPath: String, options: ContextOptions = ContextOptions(), chatTemplate: String? = nil) throws {
        try self.init(model: try Model(path: modelPath), options: options, chatTemplate: chatTemplate)
    }

    public var context: InferenceContext { generator.context }

    /// The chat template, or the reason there is none.
    public func requireTemplate() throws -> ChatTemplate {
        if let template { return template }
        throw templateError ?? ChatTemplateError.missing(known: ChatTemplate.names)
    }

    /// Token ids of a prompt, BOS/EOS as the model's metadata asks.
    public func encode(_ prompt: Prompt) throws -> [Int32] {
        switch prompt {
        case let .ids(ids): return ids
        case let .text(s): return tokenizer.encode(s, special: true, addSpecial: true)
        case let .messages(m):
            let template = try requireTemplate()
            try template.validate(m)
            return tokenizer.encode(template.render(m), addSpecial: true)
        }
    }

    /// Generates to completion on the calling thread's behalf (blocking).
    public func generate(_ prompt: Prompt, parameters: GenerationParameters, reuseCache: Bool = false,
                         onToken: (TokenEvent) -> Bool = { _ in true }) throws -> GenerationResult {
        let ids = try encode(prompt)
        return try queue.sync {
            try generator.generate(promptIds: ids, parameters: parameters, reuseCache: reuseCache, onToken: onToken)
        }
    }

    /// Streams the generated tokens. Cancelling the consumer (or its task) stops the computation
    /// at the next token.
    public func stream(_ prompt: Prompt, parameters: GenerationParameters, reuseCache: Bool = false)
        -> AsyncThrowingStream<TokenEvent, Error> {
        AsyncThrowingStream { continuation in
            let cancelled = CancellationFlag()
            continuation.onTermination = { _ in cancelled.set() }
            queue.async { [self] in
                do {
                    let ids = try encode(prompt)
                    _ = try generator.generate(promptIds: ids, parameters: parameters, reuseCache: reuseCache) { event in
                        if cancelled.isSet { return false }
                        continuation.yield(event)
                        return !cancelled.isSet
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }

    /// Forgets the cached conversation.
    public func reset() { queue.sync { generator.reset() } }

    /// Runs `body` with the inference context to itself: `generate` and `stream` wait meanwhile.
    /// (`BatchEngine` runs its batches through this.)
    public func exclusively<R>(_ body: () throws -> R) rethrows -> R { try queue.sync(execute: body) }
}

/// A flag set from any thread (a signal handler, a stream's termination) and polled by the
/// generating thread.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.lock(); value = true; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
