import Foundation

/// Many concurrent requests, one model, one continuous batch: `submit` returns each request's own
/// token stream, and a worker thread decodes every running request together (up to
/// `options.slots` at once; the rest wait their turn). Cancelling a consumer ends its sequence at
/// the next step without disturbing the others.
public final class BatchEngine: @unchecked Sendable {
    public let engine: Engine
    private let lock = NSLock()
    private var queue: [(BatchRequest, AsyncThrowingStream<TokenEvent, Error>.Continuation, CancellationFlag)] = []
    private var streams: [String: (AsyncThrowingStream<TokenEvent, Error>.Continuation, CancellationFlag)] = [:]
    private var running = false
    private var peak = 0
    private var counter = 0
    private let runner: BatchRunner

    /// `options.slots` is how many sequences decode together.
    public init(model: Model, options: ContextOptions, chatTemplate: String? = nil) throws {
        engine = try Engine(model: model, options: options, chatTemplate: chatTemplate)
        runner = BatchRunner(context: engine.context, tokenizer: engine.tokenizer)
    }

    /// Queues a request; its tokens arrive on the returned stream, which finishes after the last
    /// token (or throws the request's error, e.g. a prompt longer than the context).
    public func submit(_ prompt: Prompt, parameters: GenerationParameters) -> AsyncThrowingStream<TokenEvent, Error> {
        AsyncThrowingStream { continuation in
            let flag = CancellationFlag()
            continuation.onTermination = { _ in flag.set() }
            let ids: [Int32]
            do { ids = try engine.encode(prompt) } catch { continuation.finish(throwing: error); return }
            lock.lock()
            counter += 1
            queue.append((BatchRequest(id: "req-\(counter)", promptIds: ids, parameters: parameters), continuation, flag))
            let start = !running
            running = true
            lock.unlock()
            if start { Thread.detachNewThread { [self] in work() } }
        }
    }

    /// Requests decoding now, and requests waiting for a slot.
    public var activeRequests: Int { lock.lock(); defer { lock.unlock() }; return streams.count }
    public var queuedRequests: Int { lock.lock(); defer { lock.unlock() }; return queue.count }
    /// The most sequences that have run in one step so far.
    public var peakConcurrentSequences: Int { lock.lock(); defer { lock.unlock() }; return peak }

    private func next() -> BatchRequest? {
        lock.lock(); defer { lock.unlock() }
        while !queue.isEmpty {
            let (request, continuation, flag) = queue.removeFirst()
            if flag.isSet { continuation.finish(); continue }
            streams[request.id] = (continuation, flag)
            return request
        }
        return nil
    }

    private func stream(_ id: String) -> (AsyncThrowingStream<TokenEvent, Error>.Continuation, CancellationFlag)? {
        lock.lock(); defer { lock.unlock() }
        return streams[id]
    }

    private func work() {
        while true {
            do {
                try runner.run(next: next, onToken: { [self] id, event in
                    stream(id)?.0.yield(event)
                }, onFinish: { [self] id, outcome in
                    lock.lock()
                    let s = streams.removeValue(forKey: id)
                    lock.unlock()
                    switch outcome {
                    case .success: s?.0.finish()
                    case let .failure(e): s?.0.finish(throwing: e)
                    }
                }, shouldStop: { false }, isCancelled: { [self] id in stream(id)?.1.isSet ?? true },
                   onStep: { [self] n in lock.lock(); peak = max(peak, n); lock.unlock() })
            } catch {
                // An error of the step itself ends every running stream with it.
                lock.lock()
                let all = streams.values
                streams.removeAll()
                lock.unlock()
                for s in all { s.0.finish(throwing: error) }
            }
            lock.lock()
            if queue.isEmpty { running = false; lock.unlock(); return }
            lock.unlock()
        }
    }
}
