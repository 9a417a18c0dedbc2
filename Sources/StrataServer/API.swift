import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import Strata

/// The endpoints: OpenAI's chat and text completions (plain and streamed), models, and Strata's
/// health, metrics, tokenize/detokenize and chat page.
final class API: Sendable {
    let options: ServerOptions
    let state: ServerState
    let metrics: ServerMetrics
    let logger: Logger
    private let counter = IDCounter()
    private let embeddingsWaiting = Gate()
    private let created = Int(Date().timeIntervalSince1970)

    init(options: ServerOptions, state: ServerState, metrics: ServerMetrics, logger: Logger) {
        self.options = options
        self.state = state
        self.metrics = metrics
        self.logger = logger
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: self.metrics.text())))
        }
        router.get("/") { _, _ in try self.chatPage() }
        router.get("/v1/models") { _, _ in try self.models() }
        router.post("/v1/chat/completions") { request, context in try await self.chat(request, logger: context.logger) }
        router.post("/v1/completions") { request, context in try await self.completions(request, logger: context.logger) }
        router.post("/v1/embeddings") { request, _ in try await self.embeddings(request) }
        router.post("/tokenize") { request, _ in try await self.tokenize(request) }
        router.post("/detokenize") { request, _ in try await self.detokenize(request) }
    }

    // MARK: - Small endpoints

    func health() -> Response {
        guard let engine = state.engine else { return jsonResponse(#"{"status":"loading"}"#, status: 503, retryAfter: true) }
        return jsonResponse(JSON.string(["status": "ok", "slots_processing": engine.activeRequests,
                                         "slots_idle": options.parallel - engine.activeRequests, "queued": engine.queuedRequests]))
    }

    func models() throws -> Response {
        let engine = try ready()
        let c = engine.engine.model.config
        let mtime = (try? FileManager.default.attributesOfItem(atPath: options.modelPath)[.modificationDate] as? Date).map { Int($0.timeIntervalSince1970) } ?? created
        let model: [String: Any] = [
            "id": options.modelID, "object": "model", "created": mtime, "owned_by": "strata",
            "meta": ["architecture": c.architecture.name, "n_ctx_train": c.contextLength, "n_ctx_slot": engine.engine.context.contextLength,
                     "n_vocab": c.vocabSize, "n_embd": c.embeddingLength, "n_layer": c.blockCount],
        ]
        var data: [[String: Any]] = [model]
        if let encoder = state.encoder {
            data.append(["id": embeddingModelID, "object": "model", "created": created, "owned_by": "strata",
                         "meta": ["architecture": "bert", "n_embd": encoder.config.hidden, "n_layer": encoder.config.layers,
                                  "max_seq_length": encoder.config.maxSeqLength]])
        }
        return jsonResponse(JSON.string(["object": "list", "data": data]))
    }

    var embeddingModelID: String {
        options.embeddingModelID ?? options.embeddingModel.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "embeddings"
    }

    /// Most inputs in one embeddings request (OpenAI's limit).
    static let maxEmbeddingInputs = 2048

    func embeddings(_ request: Request) async throws -> Response {
        var request = request
        let (_, r) = try await parse(&request, as: EmbeddingRequest.self)
        guard let encoder = state.encoder else {
            throw APIError.invalid("no embedding model is loaded: start the server with --embedding-model NAME|DIR (e.g. all-minilm-l6-v2)",
                                   param: "model", code: "model_not_found")
        }
        let format = r.encoding_format ?? "float"
        guard format == "float" || format == "base64" else {
            throw APIError.invalid("encoding_format must be 'float' or 'base64', got '\(format)'", param: "encoding_format")
        }
        if let d = r.dimensions, d != encoder.config.hidden {
            throw APIError.invalid("this model's embeddings have \(encoder.config.hidden) dimensions; it cannot give \(d)", param: "dimensions")
        }
        let count = switch r.input { case let .texts(t): t.count; case let .ids(i): i.count }
        guard count >= 1, count <= Self.maxEmbeddingInputs else {
            throw APIError.invalid("'input' must hold 1 to \(Self.maxEmbeddingInputs) items, got \(count)", param: "input")
        }
        if case let .ids(given) = r.input {
            for seq in given {
                guard !seq.isEmpty, seq.count <= encoder.config.maxSeqLength else {
                    throw APIError.invalid("each token array must hold 1 to \(encoder.config.maxSeqLength) ids", param: "input")
                }
                try checkIds(seq, vocabularySize: encoder.config.vocabSize, param: "input")
            }
        }
        // Embeddings run one request at a time; at most --queue more may wait.
        guard embeddingsWaiting.enter(limit: options.queue + 1) else {
            metrics.rejected.increment()
            throw APIError.busy("the server is busy with other embedding requests; try again shortly")
        }
        defer { embeddingsWaiting.leave() }
        let (vectors, tokens): ([[Float]], Int) = try await offload(on: state.encoderQueue) {
            let ids: [[Int32]] = switch r.input { case let .texts(texts): texts.map(encoder.encode); case let .ids(given): given }
            var out: [[Float]] = []
            out.reserveCapacity(ids.count)
            var i = 0
            while i < ids.count {
                out += try encoder.embed(ids: Array(ids[i ..< min(i + 32, ids.count)]))
                i += 32
            }
            return (out, ids.reduce(0) { $0 + $1.count })
        }
        let items: [[String: Any]] = vectors.enumerated().map { i, v in
            let embedding: Any = format == "base64" ? v.withUnsafeBytes { Data($0).base64EncodedString() } : v.map(Double.init)
            return ["object": "embedding", "index": i, "embedding": embedding]
        }
        return jsonResponse(JSON.string(["object": "list", "data": items, "model": embeddingModelID,
                                         "usage": ["prompt_tokens": tokens, "total_tokens": tokens]]))
    }

    func chatPage() throws -> Response {
        guard let url = Bundle.module.url(forResource: "chat", withExtension: "html"), let page = try? Data(contentsOf: url) else {
            throw APIError(status: 500, message: "the chat page resource is missing from this build", type: "server_error", param: nil, code: nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: page)))
    }

    func tokenize(_ request: Request) async throws -> Response {
        var request = request
        let (engine, r) = try await parse(&request, as: TokenizeRequest.self)
        let tokenizer = engine.engine.tokenizer
        let text = try await offload {
            let ids = tokenizer.encode(r.content, special: true, addSpecial: r.add_special ?? false)
            if r.with_pieces ?? false {
                return JSON.string(["tokens": ids.map { ["id": Int($0), "piece": tokenizer.piece($0)] }])
            }
            return JSON.string(["tokens": ids.map(Int.init)])
        }
        return jsonResponse(text)
    }

    func detokenize(_ request: Request) async throws -> Response {
        var request = request
        let (engine, r) = try await parse(&request, as: DetokenizeRequest.self)
        try checkIds(r.tokens, vocabularySize: engine.engine.model.config.vocabSize, param: "tokens")
        let tokenizer = engine.engine.tokenizer
        return jsonResponse(try await offload { JSON.string(["content": tokenizer.decode(r.tokens)]) })
    }

    // MARK: - Completions

    enum Kind { case chat, text }

    func chat(_ request: Request, logger: Logger) async throws -> Response {
        var request = request
        let (engine, r) = try await parse(&request, as: ChatRequest.self)
        guard !r.messages.isEmpty else { throw APIError.invalid("'messages' is empty", param: "messages") }
        let messages = r.messages.map { ChatMessage(role: $0.role, content: $0.content) }
        let ids: [Int32] = try await offload {
            do { return try engine.engine.encode(.messages(messages)) } catch { throw APIError.invalid("\(error)", param: "messages") }
        }
        // OpenAI: top_logprobs (0-20) needs logprobs: true.
        let wants = r.logprobs ?? false
        let top = r.top_logprobs ?? 0
        guard top >= 0 && top <= 20 else { throw APIError.invalid("top_logprobs must be between 0 and 20, got \(top)", param: "top_logprobs") }
        if top > 0 && !wants { throw APIError.invalid("top_logprobs needs logprobs: true", param: "top_logprobs") }
        return try await complete(.chat, engine: engine, ids: ids, fields: r.fields, logprobs: wants, top: top, echo: nil, request: request, logger: logger)
    }

    func completions(_ request: Request, logger: Logger) async throws -> Response {
        var request = request
        let (engine, r) = try await parse(&request, as: CompletionRequest.self)
        let ids: [Int32]
        var echo: String?
        switch r.prompt {
        case let .text(s):
            ids = try await offload { engine.engine.tokenizer.encode(s, special: true, addSpecial: true) }
            if r.echo ?? false { echo = s }
        case let .ids(given):
            try checkIds(given, vocabularySize: engine.engine.model.config.vocabSize, param: "prompt")
            ids = given
            if r.echo ?? false { echo = try await offload { engine.engine.tokenizer.decode(given) } }
        }
        // Completions: logprobs is how many alternatives (0-20) to report per token.
        let top = r.logprobs ?? 0
        guard top >= 0 && top <= 20 else { throw APIError.invalid("logprobs must be between 0 and 20, got \(top)", param: "logprobs") }
        return try await complete(.text, engine: engine, ids: ids, fields: r.fields, logprobs: r.logprobs != nil, top: top, echo: echo, request: request, logger: logger)
    }

    /// One choice as it is being generated.
    private struct ChoiceOutput {
        var text = ""
        var tokens: [TokenEvent] = []
        var result: GenerationResult?
        var firstToken: UInt64 = 0
    }

    private func complete(_ kind: Kind, engine: BatchEngine, ids: [Int32], fields: SamplingFields, logprobs: Bool, top: Int,
                          echo: String?, request: Request, logger: Logger) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let context = engine.engine.context
        let param = kind == .chat ? "messages" : "prompt"
        guard !ids.isEmpty else { throw APIError.invalid("the prompt is empty", param: param) }
        guard ids.count <= context.contextLength else {
            throw APIError.invalid("the prompt is \(ids.count) tokens, longer than the context of \(context.contextLength) tokens per slot (--ctx)",
                                   param: param, code: "context_length_exceeded")
        }
        var params = try fields.parameters(vocabularySize: context.vocabSize, contextLength: context.contextLength)
        params.logprobs = logprobs
        params.topLogprobs = top
        let n = try fields.choices(limit: options.parallel + options.queue)
        let perChoice = (0 ..< n).map { i -> GenerationParameters in
            var p = params
            if let s = p.sampling.seed { p.sampling.seed = s &+ UInt64(i) }
            return p
        }
        let sequences: [(id: String, events: AsyncThrowingStream<BatchEvent, Error>)]
        do {
            sequences = try engine.enqueue(ids, parameters: perChoice)
        } catch let e as BatchEngineError {
            metrics.rejected.increment()
            throw APIError.busy(e.description)
        }
        let id = (kind == .chat ? "chatcmpl-" : "cmpl-") + String(counter.next())
        logger.info("\(id): \(ids.count) prompt tokens, sequences \(sequences.map(\.id).joined(separator: ","))")
        let streams = sequences.map(\.events)
        let header = Header(id: id, object: kind == .chat ? "chat.completion" : "text_completion", created: Int(Date().timeIntervalSince1970),
                            model: options.modelID)
        let streaming = fields.stream ?? false
        // A streamed answer also carries a comment line every half second while no token comes (a
        // request waiting for a slot): writing it is how a client that has gone is noticed.
        let merged = merge(streams, heartbeat: streaming ? .milliseconds(500) : nil)
        if streaming {
            let includeUsage = fields.stream_options?.include_usage ?? false
            // A client that leaves makes the next write fail, which ends the merged stream and so
            // cancels every choice.
            let body = ResponseBody { [self] writer in
                try await self.stream(kind, header: header, n: n, events: merged, promptTokens: ids.count,
                                      includeUsage: includeUsage, echo: echo, start: start, logger: logger, writer: &writer)
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
        let outputs = try await request.body.consumeWithCancellationOnInboundClose { _ in
            try await self.collect(merged, n: n, start: start, id: id, logger: logger)
        }
        let choices = outputs.enumerated().map { i, o in choiceJSON(kind, index: i, output: o, echo: echo) }
        let object = header.json(choices: choices, usage: usage(outputs.compactMap(\.result), promptTokens: ids.count))
        // Watching for the client's leaving consumed the connection's inbound side: it closes
        // after this response, and says so, so that no client reuses it.
        var response = jsonResponse(JSON.string(object))
        response.headers[.connection] = "close"
        return response
    }

    enum Merged: Sendable {
        case event(Int, BatchEvent)
        case heartbeat
    }

    /// The choices' events on one stream, tagged with the choice index, with a heartbeat every
    /// `heartbeat` if asked. Ending the merged stream (a client gone) cancels every choice.
    private func merge(_ streams: [AsyncThrowingStream<BatchEvent, Error>], heartbeat: Duration?) -> AsyncThrowingStream<Merged, Error> {
        let (merged, continuation) = AsyncThrowingStream<Merged, Error>.makeStream()
        let all = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, s) in streams.enumerated() {
                    group.addTask { for try await e in s { continuation.yield(.event(i, e)) } }
                }
                try await group.waitForAll()
            }
        }
        let beat = heartbeat.map { period in
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: period)
                    continuation.yield(.heartbeat)
                }
            }
        }
        Task {
            do { try await all.value; continuation.finish() } catch { continuation.finish(throwing: error) }
            beat?.cancel()
        }
        continuation.onTermination = { _ in all.cancel(); beat?.cancel() }
        return merged
    }

    private func collect(_ events: AsyncThrowingStream<Merged, Error>, n: Int, start: UInt64,
                         id: String, logger: Logger) async throws -> [ChoiceOutput] {
        var outputs = Array(repeating: ChoiceOutput(), count: n)
        for try await item in events {
            guard case let .event(i, event) = item else { continue }
            switch event {
            case let .token(t):
                if t.token >= 0 && outputs[i].firstToken == 0 { outputs[i].firstToken = DispatchTime.now().uptimeNanoseconds }
                outputs[i].text += t.text
                if t.token >= 0 { outputs[i].tokens.append(t) }
            case let .finished(r):
                outputs[i].result = r
                recordTimes(r, first: outputs[i].firstToken, start: start)
            }
        }
        try Task.checkCancellation()
        guard outputs.allSatisfy({ $0.result != nil }) else { throw CancellationError() }
        return outputs
    }

    private func stream(_ kind: Kind, header: Header, n: Int, events: AsyncThrowingStream<Merged, Error>,
                        promptTokens: Int, includeUsage: Bool, echo: String?, start: UInt64, logger: Logger,
                        writer: inout any ResponseBodyWriter) async throws {
        /// One choice's chunk: chat's `delta` (with the role first), or completions' `text`.
        func send(_ i: Int, text: String, role: Bool = false, logprobs: Any = NSNull(), finish: String? = nil) async throws {
            var choice: [String: Any] = ["index": i, "logprobs": logprobs, "finish_reason": finish ?? NSNull()]
            if kind == .chat {
                choice["delta"] = finish != nil ? [String: Any]() : (role ? ["role": "assistant", "content": text] : ["content": text])
            } else {
                choice["text"] = text
            }
            try await writer.write(ByteBuffer(string: "data: " + JSON.string(header.chunk(choices: [choice])) + "\n\n"))
        }
        var firsts = Array(repeating: UInt64(0), count: n)
        // Characters of each choice's text sent so far (completions' `text_offset`).
        var sent = Array(repeating: echo?.unicodeScalars.count ?? 0, count: n)
        var results: [GenerationResult] = []
        for i in 0 ..< n {
            if kind == .chat { try await send(i, text: "", role: true) } else if let echo { try await send(i, text: echo) }
        }
        do {
            for try await item in events {
                guard case let .event(i, event) = item else {
                    try await writer.write(ByteBuffer(string: ": waiting\n\n"))
                    continue
                }
                switch event {
                case let .token(t):
                    if t.token >= 0 && firsts[i] == 0 { firsts[i] = DispatchTime.now().uptimeNanoseconds }
                    let lp: Any = t.token >= 0 && !t.logprob.isNaN ? logprobsJSON(kind, [t], offset: sent[i]) : NSNull()
                    sent[i] += t.text.unicodeScalars.count
                    guard !t.text.isEmpty || !(lp is NSNull) else { continue }
                    try await send(i, text: t.text, logprobs: lp)
                case let .finished(r):
                    results.append(r)
                    recordTimes(r, first: firsts[i], start: start)
                    try await send(i, text: "", finish: finishReason(r.finishReason))
                }
            }
        } catch let e as CancellationError {
            throw e
        } catch {
            // The request failed after the answer started: say so in the stream, then end it.
            let err = APIError(status: 500, message: "\(error)", type: "server_error", param: nil, code: nil)
            try await writer.write(ByteBuffer(string: "data: " + err.json + "\n\n"))
            return
        }
        if includeUsage {
            let chunk = header.chunk(choices: [], usage: usage(results, promptTokens: promptTokens))
            try await writer.write(ByteBuffer(string: "data: " + JSON.string(chunk) + "\n\n"))
        }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
    }

    // MARK: - Pieces of responses

    private struct Header {
        let id: String
        let object: String
        let created: Int
        let model: String

        func json(choices: [[String: Any]], usage: [String: Any]) -> [String: Any] {
            ["id": id, "object": object, "created": created, "model": model, "system_fingerprint": "strata",
             "choices": choices, "usage": usage]
        }

        func chunk(choices: [[String: Any]], usage: [String: Any]? = nil) -> [String: Any] {
            var o: [String: Any] = ["id": id, "object": object == "chat.completion" ? "chat.completion.chunk" : object,
                                    "created": created, "model": model, "system_fingerprint": "strata", "choices": choices]
            if let usage { o["usage"] = usage }
            return o
        }
    }

    private func finishReason(_ r: FinishReason) -> String {
        switch r {
        case .eos, .stop, .cancelled: "stop"
        case .length: "length"
        }
    }

    private func choiceJSON(_ kind: Kind, index: Int, output o: ChoiceOutput, echo: String?) -> [String: Any] {
        let reason = o.result.map { finishReason($0.finishReason) } ?? "stop"
        let lp: Any = o.tokens.first.map { $0.logprob.isNaN } == false
            ? logprobsJSON(kind, o.tokens, offset: echo?.unicodeScalars.count ?? 0) : NSNull()
        if kind == .chat {
            return ["index": index, "message": ["role": "assistant", "content": o.text], "logprobs": lp, "finish_reason": reason]
        }
        return ["index": index, "text": (echo ?? "") + o.text, "logprobs": lp, "finish_reason": reason]
    }

    /// OpenAI's logprobs objects: chat's `{"content": [{token, logprob, bytes, top_logprobs}]}`,
    /// completions' `{tokens, token_logprobs, top_logprobs, text_offset}`, where `text_offset` counts
    /// characters (Unicode scalars, as Python's indices do) into the choice's whole `text` from
    /// `offset`, the characters before the first of `tokens` (the echoed prompt, earlier chunks).
    private func logprobsJSON(_ kind: Kind, _ tokens: [TokenEvent], offset start: Int = 0) -> Any {
        guard let tokenizer = state.engine?.engine.tokenizer else { return NSNull() }
        if kind == .chat {
            let content: [[String: Any]] = tokens.map { t in
                // `bytes` are the token's own bytes, also where it holds only part of a character
                // (its `token` text then shows U+FFFD): what the field is there for.
                ["token": tokenizer.piece(t.token), "logprob": JSON.number(t.logprob),
                 "bytes": tokenizer.bytes(of: t.token, special: true).map(Int.init),
                 "top_logprobs": t.top.map { a -> [String: Any] in
                     ["token": tokenizer.piece(a.id), "logprob": JSON.number(a.logprob),
                      "bytes": tokenizer.bytes(of: a.id, special: true).map(Int.init)]
                 }]
            }
            return ["content": content, "refusal": NSNull()]
        }
        var offset = start
        var offsets: [Int] = []
        for t in tokens { offsets.append(offset); offset += t.text.unicodeScalars.count }
        return ["tokens": tokens.map { tokenizer.piece($0.token) }, "token_logprobs": tokens.map { JSON.number($0.logprob) },
                "top_logprobs": tokens.map { t in Dictionary(t.top.map { (tokenizer.piece($0.id), JSON.number($0.logprob)) }, uniquingKeysWith: { a, _ in a }) },
                "text_offset": offsets]
    }

    private func usage(_ results: [GenerationResult], promptTokens: Int) -> [String: Any] {
        let completion = results.reduce(0) { $0 + $1.ids.count }
        let cached = results.map(\.timings.cachedPromptTokens).min() ?? 0
        return ["prompt_tokens": promptTokens, "completion_tokens": completion, "total_tokens": promptTokens + completion,
                "prompt_tokens_details": ["cached_tokens": cached]]
    }

    /// Time to first token (from the request's arrival) and time per output token of a sequence
    /// that ran to its end. (Token counts and the log line of every sequence, cancelled ones
    /// included, come from the engine's reports: `ModelLoader`.)
    private func recordTimes(_ r: GenerationResult, first: UInt64, start: UInt64) {
        guard first > start else { return }
        let end = DispatchTime.now().uptimeNanoseconds
        metrics.timeToFirstToken.recordNanoseconds(Int64(first - start))
        if r.ids.count > 1, end > first { metrics.timePerOutputToken.recordNanoseconds(Int64((end - first) / UInt64(r.ids.count - 1))) }
    }

    // MARK: - Helpers

    /// The request's body decoded as `T`, once the model is ready (503 before). The request keeps
    /// the collected body (what `consumeWithCancellationOnInboundClose` needs later).
    private func parse<T: Decodable>(_ request: inout Request, as: T.Type) async throws -> (BatchEngine, T) {
        let data = try await body(&request)
        let engine = try ready()
        return (engine, try decodeBody(T.self, from: data))
    }

    private func checkIds(_ ids: [Int32], vocabularySize: Int, param: String) throws {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
            throw APIError.invalid("token id \(bad) is outside the vocabulary (0..<\(vocabularySize))", param: param)
        }
    }

    /// Runs CPU work (tokenizing a long text, embeddings) on a Dispatch queue, not on the few
    /// threads that serve every connection's async code.
    private func offload<T: Sendable>(on queue: DispatchQueue = .global(), _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }

    private func ready() throws -> BatchEngine {
        guard let engine = state.engine else { throw APIError.busy("the model is still loading", code: "model_loading") }
        return engine
    }

    /// The request body, at most `maxBodyBytes` (413 beyond).
    private func body(_ request: inout Request) async throws -> Data {
        // The 413 comes once the limit is read, not on a declared length alone: an answer before
        // the body is in makes NIO close the connection, and a client still sending (most do not
        // read until they have sent) would see a broken pipe instead. One that stops sending is
        // closed by the idle timeout.
        do {
            let buffer = try await request.collectBody(upTo: options.maxBodyBytes)
            return Data(buffer.readableBytesView)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw tooLarge
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
    }

    private var tooLarge: APIError {
        APIError(status: 413, message: "the request body is larger than \(options.maxBodyBytes) bytes", type: "invalid_request_error",
                           param: nil, code: "request_too_large")
    }
}

/// Counts requests in a section and refuses entry beyond a limit.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var inside = 0
    func enter(limit: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard inside < limit else { return false }
        inside += 1
        return true
    }
    func leave() { lock.lock(); inside -= 1; lock.unlock() }
}

/// A thread-safe counter for response ids.
final class IDCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
