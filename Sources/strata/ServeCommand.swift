import ArgumentParser
import Foundation
import Logging
import Strata
import StrataServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over HTTP with OpenAI's API (chat and text completions, streamed or not), on one continuous batch.",
        discussion: """
        Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health (503 while \
        loading), GET /metrics (Prometheus), POST /tokenize, POST /detokenize, and GET / (a chat page). \
        --ctx is the context of each slot (default 4096, or the model's if smaller). Logs go to stderr. SIGTERM or SIGINT stops accepting requests, lets running ones finish (up to --grace \
        seconds) and exits 0.
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The model id that /v1/models lists (default: the file name without .gguf).")
    var alias: String?
    @Option(name: .customLong("embedding-model"), help: "A sentence encoder for /v1/embeddings: a sentence-transformers folder or a name (all-minilm-l6-v2; fetched on first use).")
    var embeddingModel: String?
    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the one taken is logged).")
    var port = 8080
    @Option(help: "Sequences decoding together (KV cache slots).")
    var parallel = 4
    @Option(help: "Sequences that may wait for a slot; more get 503 with Retry-After at once.")
    var queue = 32
    @Option(name: .customLong("chat-template"), help: "Override the chat template: \(ChatTemplate.names.joined(separator: ", ")).")
    var chatTemplate: String?
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on /v1/* (default: $STRATA_API_KEY, else none).")
    var apiKey: String?
    @Option(name: .customLong("max-body"), help: "Largest request body in bytes (413 beyond).")
    var maxBody = 8 << 20
    @Option(help: "Seconds running requests may take to finish after SIGTERM/SIGINT before they are cancelled.")
    var grace = 10.0
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may stay silent while a request (or the rest of one) is awaited before it is closed.")
    var idleTimeout = 60.0
    @Option(name: .customLong("log-level"), help: "trace, debug, info (one line per request), notice, warning, error.")
    var logLevel = "info"

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, got \(port)") }
        guard (1 ... 1024).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 1024, got \(parallel)") }
        guard (0 ... 1 << 20).contains(queue) else { throw ValidationError("--queue must be between 0 and 1048576, got \(queue)") }
        guard maxBody >= 1024 else { throw ValidationError("--max-body must be at least 1024 bytes, got \(maxBody)") }
        guard grace.isFinite, grace >= 0, grace <= 86400 else { throw ValidationError("--grace must be between 0 and 86400 seconds") }
        guard idleTimeout.isFinite, idleTimeout >= 0.1, idleTimeout <= 86400 else { throw ValidationError("--idle-timeout must be between 0.1 and 86400 seconds") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        if let t = chatTemplate { do { _ = try ChatTemplate.named(t) } catch { throw ValidationError("\(error)") } }
        if let k = apiKey, k.isEmpty { throw ValidationError("--api-key is empty") }
    }

    func run() async throws {
        let path = try Model.resolvePath(modelOptions.model)
        var options = ServerOptions(modelPath: path)
        if let alias { options.modelID = alias }
        if let e = embeddingModel {
            options.embeddingModel = try ModelStore.resolve(e) { printErr("model: " + $0) }
            options.embeddingModelID = KnownModel.named(e)?.name ?? URL(fileURLWithPath: e).lastPathComponent
        }
        options.host = host
        options.port = port
        options.parallel = parallel
        options.queue = queue
        // --ctx is per slot here; without it, 4096 (or the model's context if smaller).
        options.context = modelOptions.contextOptions(slots: parallel)
        options.weights = modelOptions.weights
        options.chatTemplate = chatTemplate
        options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["STRATA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        options.maxBodyBytes = maxBody
        options.gracePeriod = .milliseconds(Int64(grace * 1000))
        options.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "strata.serve")
        try await StrataServer.run(options, logger: logger)
        logger.notice("stopped")
    }
}
