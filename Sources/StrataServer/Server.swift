import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Strata

/// How `strata serve` runs.
public struct ServerOptions: Sendable {
    public var modelPath: String
    /// The id `/v1/models` lists and responses carry (default: the file name without `.gguf`).
    public var modelID: String
    public var host = "127.0.0.1"
    /// 0 picks a free port (the one taken is logged: "listening on http://HOST:PORT").
    public var port = 8080
    /// Sequences decoding together (slots of the KV cache).
    public var parallel = 4
    /// Sequences that may wait for a slot; beyond them a request gets 503 at once.
    public var queue = 32
    /// Context options: `slots` is set from `parallel`, `contextLength` is per slot.
    public var context = ContextOptions()
    public var weights: WeightsMode = .native
    public var chatTemplate: String?
    /// A sentence encoder (a folder or a known name) for `/v1/embeddings`; none by default.
    public var embeddingModel: String?
    /// The id the embedding model is listed under (default: its folder's name).
    public var embeddingModelID: String?
    /// With a key, `/v1/*` needs `Authorization: Bearer KEY`.
    public var apiKey: String?
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 8 << 20
    /// After SIGTERM/SIGINT, how long running requests may take to finish before they are cancelled.
    public var gracePeriod: Duration = .seconds(10)
    /// A connection silent this long while the server waits for a request (or the rest of one)
    /// is closed.
    public var idleTimeout: Duration = .seconds(60)

    public init(modelPath: String) {
        self.modelPath = modelPath
        var id = URL(fileURLWithPath: modelPath).lastPathComponent
        if id.lowercased().hasSuffix(".gguf") { id.removeLast(5) }
        modelID = id
    }
}

/// The models once loaded (nil while loading: `/health` and the API answer 503).
final class ServerState: @unchecked Sendable {
    private let lock = NSLock()
    private var _engine: BatchEngine?
    private var _encoder: SentenceEncoder?
    private var _ready = false
    var engine: BatchEngine? { lock.lock(); defer { lock.unlock() }; return _ready ? _engine : nil }
    var encoder: SentenceEncoder? { lock.lock(); defer { lock.unlock() }; return _ready ? _encoder : nil }
    var ready: Bool { lock.lock(); defer { lock.unlock() }; return _ready }
    func set(_ e: BatchEngine, encoder: SentenceEncoder?) { lock.lock(); _engine = e; _encoder = encoder; _ready = true; lock.unlock() }
    /// Set once SIGTERM/SIGINT has begun the graceful stop: a request cancelled from then on was
    /// cancelled by the server (its grace period ran out), not by its client.
    private var _stopping = false
    var stopping: Bool { lock.lock(); defer { lock.unlock() }; return _stopping }
    func setStopping() { lock.lock(); _stopping = true; lock.unlock() }
    /// Embeddings run one request at a time on their own thread (the encoder allocates per batch).
    let encoderQueue = DispatchQueue(label: "strata.serve.embeddings")
}

/// The OpenAI-compatible server: Hummingbird for HTTP, the continuous batcher for every request,
/// swift-service-lifecycle for a graceful stop on SIGTERM/SIGINT.
public enum StrataServer {
    /// Serves until SIGTERM or SIGINT, then stops accepting, lets running requests finish (up to
    /// the grace period, then cancels them) and returns. Throws when the model cannot be loaded
    /// or the address cannot be bound.
    public static func run(_ options: ServerOptions, logger: Logger) async throws {
        let state = ServerState()
        let metrics = ServerMetrics()
        let api = API(options: options, state: state, metrics: metrics, logger: logger)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: APIMiddleware(apiKey: options.apiKey, state: state, metrics: metrics, logger: logger))
        api.addRoutes(to: router)
        // A connection that sends nothing for `idleTimeout` — between requests, or stalled inside
        // a request's head or body — is closed; one waiting for its answer is not.
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: TimeAmount(options.idleTimeout))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "strata"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.port
                logger.notice("listening on http://\(options.host):\(port)")
            },
            logger: logger
        )
        let loader = ModelLoader(options: options, state: state, metrics: metrics, logger: logger)
        var config = ServiceGroupConfiguration(services: [app, loader], gracefulShutdownSignals: [.sigterm, .sigint],
                                               cancellationSignals: [], logger: logger)
        config.maximumGracefulShutdownDuration = options.gracePeriod
        config.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: config).run()
    }
}

/// Loads the model while the server already answers (`/health` says 503 until it is ready), then
/// stays up until shutdown. A model that cannot be loaded ends the server with the error.
struct ModelLoader: Service {
    let options: ServerOptions
    let state: ServerState
    let metrics: ServerMetrics
    let logger: Logger

    func run() async throws {
        let options = options
        let started = Date()
        // The load runs on a thread of its own; a shutdown while it runs (cancellation after the
        // grace period) returns at once, leaving the thread to finish unobserved.
        let once = OnceContinuation<(BatchEngine, SentenceEncoder?)?>()
        let loaded: (BatchEngine, SentenceEncoder?)? = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { c in
                once.set(c)
                Thread.detachNewThread {
                    do {
                        let model = try Model(path: options.modelPath, weights: options.weights)
                        var ctx = options.context
                        ctx.slots = options.parallel
                        ctx.contextLength = min(ctx.contextLength ?? 4096, model.config.contextLength)
                        ctx.maxBatchTokens = max(ctx.maxBatchTokens, options.parallel)
                        let engine = try BatchEngine(model: model, options: ctx, chatTemplate: options.chatTemplate, maxQueued: options.queue)
                        let encoder = try options.embeddingModel.map { try SentenceEncoder(folder: try ModelStore.resolve($0), backend: ctx.backend) }
                        once.resume(.success((engine, encoder)))
                    } catch {
                        once.resume(.failure(error))
                    }
                }
            }
        } onCancel: {
            once.resume(.success(nil))
        }
        guard let (engine, encoder) = loaded else { return }
        let metrics = metrics, logger = logger
        engine.observe { status in
            metrics.processing.record(status.running)
            metrics.queued.record(status.queued)
            if let step = status.step {
                metrics.steps.increment()
                metrics.kvCacheUsage.record(Double(step.cachedPositions) / Double(max(step.capacity, 1)))
                if step.prefillRows > 0 { metrics.promptComputedTokens.increment(by: step.prefillRows) }
            }
            if let (id, r) = status.finished {
                metrics.promptTokens.increment(by: r.promptIds.count)
                metrics.promptCachedTokens.increment(by: r.timings.cachedPromptTokens)
                metrics.generatedTokens.increment(by: r.ids.count)
                logger.info("\(id) finished", metadata: [
                    "prompt_tokens": "\(r.promptIds.count)", "cached_tokens": "\(r.timings.cachedPromptTokens)",
                    "generated_tokens": "\(r.ids.count)", "finish_reason": "\(r.finishReason.rawValue)",
                    "ttft_ms": "\(String(format: "%.1f", r.timings.timeToFirstToken * 1000))",
                    "tokens_per_second": "\(String(format: "%.1f", r.timings.generationTokensPerSecond))",
                ])
            }
        }
        state.set(engine, encoder: encoder)
        let c = engine.engine.context
        logger.notice("model \(options.modelID) ready in \(String(format: "%.2f", Date().timeIntervalSince(started))) s: \(options.parallel) slots × \(c.contextLength) positions, queue \(options.queue), backend \(c.backend), \(c.threads) threads, KV cache \(formatBytes(c.kvCacheBytes)) (\(c.cacheType))")
        try? await gracefulShutdown()
        state.setStopping()
    }
}

/// A continuation resumed by whichever comes first (the load, or a cancellation); later calls do nothing.
final class OnceContinuation<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Error>?
    private var early: Result<T, Error>?
    private var done = false

    func set(_ c: CheckedContinuation<T, Error>) {
        lock.lock()
        if let early { lock.unlock(); c.resume(with: early); return }
        continuation = c
        lock.unlock()
    }

    func resume(_ result: Result<T, Error>) {
        lock.lock()
        guard !done else { lock.unlock(); return }
        done = true
        guard let c = continuation else { early = result; lock.unlock(); return }
        continuation = nil
        lock.unlock()
        c.resume(with: result)
    }
}

/// Request ids, timing and logging of every request, the API key check for `/v1/*`, and errors
/// turned into OpenAI's error object (whatever threw them).
struct APIMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let apiKey: String?
    let state: ServerState
    let metrics: ServerMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let path = request.uri.path
        // The router ignores empty path components ("//v1//models" reaches /v1/models), so the
        // key is checked on the same reading of the path.
        let first = path.split(separator: "/").first ?? ""
        let isAPI = first == "v1"
        let needsKey = !["", "health", "metrics"].contains(first)
        var response: Response
        if needsKey, let key = apiKey, request.headers[.authorization] != "Bearer \(key)" {
            response = APIError(status: 401, message: "invalid or missing API key: send 'Authorization: Bearer KEY'",
                                type: "invalid_request_error", param: nil, code: "invalid_api_key").response
        } else {
            do {
                response = try await next(request, context)
            } catch let e as APIError {
                response = e.response
            } catch let e as HTTPError {
                let code = Int(e.status.code)
                let type = code == 404 ? "not_found_error" : "invalid_request_error"
                let message = code == 413 ? "the request body is too large" : (e.body ?? e.status.reasonPhrase)
                response = APIError(status: code, message: message, type: type, param: nil, code: nil).response
            } catch let e as HTTPParserError {
                // A body cut short (the connection's sending side closed before Content-Length
                // bytes) or otherwise broken HTTP: the request's fault.
                var err = APIError.invalid("the request is malformed or incomplete: \(e)", param: nil, code: "invalid_http")
                err.headers.append(("Connection", "close"))
                response = err.response
            } catch is CancellationError where state.stopping {
                // The server is stopping and the grace period ran out: its doing, not the client's.
                response = APIError(status: 503, message: "the server is shutting down: the request was cancelled when its grace period ran out",
                                    type: "server_error", param: nil, code: "server_shutting_down").response
            } catch is CancellationError {
                // The client closed its side of the connection before its answer (nginx's 499:
                // client closed request). Usually it is gone; one that only half-closed and
                // still reads gets this error object.
                context.logger.info("\(request.method) \(path): the client closed the connection")
                var err = APIError(status: 499, message: "the request was cancelled: the client closed its side of the connection before the answer",
                                   type: "invalid_request_error", param: nil, code: "client_closed_request")
                err.headers.append(("Connection", "close"))
                response = err.response
            } catch {
                logger.error("internal error on \(path): \(error)")
                response = APIError(status: 500, message: "internal error: \(error)", type: "server_error", param: nil, code: nil).response
            }
        }
        let status = Int(response.status.code)
        if isAPI { metrics.request(status: status) }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        context.logger.info("\(request.method) \(path) \(status)", metadata: ["ms": "\(String(format: "%.1f", ms))"])
        return response
    }
}

extension APIError {
    var response: Response {
        var h = HTTPFields()
        h[.contentType] = "application/json"
        for (name, value) in headers { if let n = HTTPField.Name(name) { h[n] = value } }
        return Response(status: .init(code: status), headers: h, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

func jsonResponse(_ text: String, status: Int = 200, retryAfter: Bool = false) -> Response {
    var h: HTTPFields = [.contentType: "application/json"]
    if retryAfter { h[.retryAfter] = "1" }
    return Response(status: .init(code: status), headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
}
