import Foundation

/// What a batch-engine stream carries: each token as it is chosen, then the sequence's result
/// (finish reason, timings, cached prompt tokens) just before the stream ends.
public enum BatchEvent: Sendable {
    case token(TokenEvent)
    case finished(GenerationResult)
}

/// The engine's load, reported after each step and whenever a request comes or goes.
public struct BatchEngineStatus: Sendable {
    /// Sequences holding a slot.
    public var running: Int
    /// Sequences waiting for one.
    public var queued: Int
    /// The step just run (nil when the report is for a request coming or going).
    public var step: BatchStep?
    /// The sequence that just ended and its result (cancelled ones included), with its id.
    public var finished: (id: String, result: GenerationResult)?
}

public enum BatchEngineError: Error, Equatable, CustomStringConvertible {
    /// Every slot is busy and the wait queue is full.
    case overloaded(running: Int, queued: Int)
    public var description: String {
        switch self {
        case let .overloaded(r, q): "the server is busy: \(r) sequences running and \(q) waiting; try again shortly"
        }
    }
}

/// Many concurrent requests, one model, one continuous batch: `submit` returns each request's own
/// token stream, and a worker thread decodes every running request together (up to
/// `options.slots` at once; up to `maxQueued` more wait their turn, beyond that `enqueue` refuses
/// at once). A request submitted while others decode joins the next step. Cancelling a consumer
/// ends its sequence at the next step without disturbing the others. Free slots keep what they
/// computed, and a new prompt that starts the same way reuses it (see `BatchRunner`).
///
/// The engine's `Engine` shares the inference context: while the batch runs, `engine.generate`
/// waits (both run on the engine's queue), and each forgets its cached prefixes after the other
/// has used the context.
public final class BatchEngine: @unchecked Sendable {
    public let engine: Engine
    /// Most sequences that may wait for a slot.
    public let maxQueued: Int
    private struct Pending {
        let request: BatchRequest
        let sink: Sink
    }
    private struct Sink {
        let yield: @Sendable (BatchEvent) -> Void
        let finish: @Sendable (Error?) -> Void
        let flag: CancellationFlag
    }
    private let lock = NSLock()
    private var queue: [Pending] = []
    private var sinks: [String: Sink] = [:]
    private var running = false
    private var peak = 0
    private var counter = 0
    private var observer: (@Sendable (BatchEngineStatus) -> Void)?
    /// Held while a report is taken and delivered, so reports arrive in the order they were taken.
    private let reportLock = NSLock()
    private let runner: BatchRunner

    /// `options.slots` is how many sequences decode together.
    public init(model: Model, options: ContextOptions, chatTemplate: String? = nil, maxQueued: Int = .max) throws {
        engine = try Engine(model: model, options: options, chatTemplate: chatTemplate)
        runner = BatchRunner(context: engine.context, tokenizer: engine.tokenizer)
        self.maxQueued = maxQueued
    }

    /// Called (on the engine's worker thread, or the submitting one) with the engine's load after
    /// each step and each request admitted, queued, finished or refused, one call at a time and in
    /// order. It must not call back into the engine.
    public func observe(_ f: @escaping @Sendable (BatchEngineStatus) -> Void) {
        lock.lock(); observer = f; lock.unlock()
    }

    /// Queues a request; its tokens arrive on the returned stream, which finishes after the last
    /// token (or throws the request's error, e.g. a prompt longer than the context).
    public func submit(_ prompt: Prompt, parameters: GenerationParameters) -> AsyncThrowingStream<TokenEvent, Error> {
        AsyncThrowingStream { continuation in
            let ids: [Int32]
            do { ids = try engine.encode(prompt) } catch { continuation.finish(throwing: error); return }
            let flag = CancellationFlag()
            continuation.onTermination = { [weak self] _ in flag.set(); self?.dropCancelled() }
            let sink = Sink(yield: { if case let .token(t) = $0 { continuation.yield(t) } },
                            finish: { continuation.finish(throwing: $0) }, flag: flag)
            do { try add([sink], ids: ids, parameters: [parameters]) } catch { continuation.finish(throwing: error) }
        }
    }

    /// Queues one sequence per element of `parameters` (an OpenAI request's `n` choices), all on
    /// the same prompt, or none: when they do not fit in the free slots and the wait queue,
    /// throws `BatchEngineError.overloaded` at once. Each stream ends with `.finished`; ending a
    /// stream early (its consumer cancelled) ends its sequence before the next step, or takes it
    /// out of the queue at once. Returns each sequence's id (as in `BatchEngineStatus.finished`)
    /// and stream.
    public func enqueue(_ promptIds: [Int32], parameters: [GenerationParameters]) throws
        -> [(id: String, events: AsyncThrowingStream<BatchEvent, Error>)] {
        var sinks: [Sink] = []
        let streams = parameters.map { _ in
            AsyncThrowingStream<BatchEvent, Error> { continuation in
                let flag = CancellationFlag()
                continuation.onTermination = { [weak self] _ in flag.set(); self?.dropCancelled() }
                sinks.append(Sink(yield: { continuation.yield($0) }, finish: { continuation.finish(throwing: $0) }, flag: flag))
            }
        }
        let ids = try add(sinks, ids: promptIds, parameters: parameters)
        return Array(zip(ids, streams))
    }

    /// Takes requests whose consumers have gone out of the wait queue.
    private func dropCancelled() {
        lock.lock()
        let gone = queue.filter { $0.sink.flag.isSet }
        if !gone.isEmpty { queue.removeAll { $0.sink.flag.isSet } }
        lock.unlock()
        guard !gone.isEmpty else { return }
        for p in gone { p.sink.finish(nil) }
        report(step: nil)
    }

    @discardableResult
    private func add(_ newSinks: [Sink], ids: [Int32], parameters: [GenerationParameters]) throws -> [String] {
        lock.lock()
        // Sequences that would be left waiting once every slot is busy.
        let waiting = sinks.count + queue.count + newSinks.count - engine.context.slots
        if waiting > maxQueued {
            let (r, q) = (sinks.count, queue.count)
            lock.unlock()
            throw BatchEngineError.overloaded(running: r, queued: q)
        }
        var requestIds: [String] = []
        for (sink, p) in zip(newSinks, parameters) {
            counter += 1
            requestIds.append("req-\(counter)")
            queue.append(Pending(request: BatchRequest(id: "req-\(counter)", promptIds: ids, parameters: p), sink: sink))
        }
        let start = !running
        running = true
        lock.unlock()
        report(step: nil)
        if start { Thread.detachNewThread { [self] in work() } }
        return requestIds
    }

    /// Requests decoding now, and requests waiting for a slot.
    public var activeRequests: Int { lock.lock(); defer { lock.unlock() }; return sinks.count }
    public var queuedRequests: Int { lock.lock(); defer { lock.unlock() }; return queue.count }
    /// The most sequences that have run in one step so far.
    public var peakConcurrentSequences: Int { lock.lock(); defer { lock.unlock() }; return peak }

    private func report(step: BatchStep?, finished: (String, GenerationResult)? = nil) {
        reportLock.lock()
        defer { reportLock.unlock() }
        lock.lock()
        let status = BatchEngineStatus(running: sinks.count, queued: queue.count, step: step, finished: finished)
        let o = observer
        lock.unlock()
        o?(status)
    }

    private func next() -> BatchRequest? {
        lock.lock()
        var admitted: BatchRequest?
        var dropped: [Sink] = []
        while !queue.isEmpty {
            let p = queue.removeFirst()
            if p.sink.flag.isSet { dropped.append(p.sink); continue }
            sinks[p.request.id] = p.sink
            admitted = p.request
            break
        }
        lock.unlock()
        for s in dropped { s.finish(nil) }
        if admitted != nil || !dropped.isEmpty { report(step: nil) }
        return admitted
    }

    private func sink(_ id: String) -> Sink? {
        lock.lock(); defer { lock.unlock() }
        return sinks[id]
    }

    private func work() {
        while true {
            do {
                try engine.exclusively {
                    try runner.run(next: next, onToken: { [self] id, event in
                        sink(id)?.yield(.token(event))
                    }, onFinish: { [self] id, outcome in
                        lock.lock()
                        let s = sinks.removeValue(forKey: id)
                        lock.unlock()
                        switch outcome {
                        case let .success(result):
                            s?.yield(.finished(result)); s?.finish(nil)
                            report(step: nil, finished: (id, result))
                        case let .failure(e):
                            s?.finish(e)
                            report(step: nil)
                        }
                    }, shouldStop: { false }, isCancelled: { [self] id in sink(id)?.flag.isSet ?? true },
                       onStep: { [self] step in
                        lock.lock(); peak = max(peak, step.sequences); lock.unlock()
                        report(step: step)
                    })
                }
            } catch {
                // An error of the step itself ends every running stream with it.
                lock.lock()
                let all = sinks.values
                sinks.removeAll()
                lock.unlock()
                for s in all { s.finish(error) }
                report(step: nil)
            }
            lock.lock()
            if queue.isEmpty { running = false; lock.unlock(); return }
            lock.unlock()
        }
    }
}
