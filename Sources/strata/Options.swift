import ArgumentParser
import CStdout
import Foundation
import Strata

extension Backend: ExpressibleByArgument {}
extension WeightsMode: ExpressibleByArgument {}
extension ActivationMode: ExpressibleByArgument {}
extension KVCacheType: ExpressibleByArgument {}

/// Which model, which kernels, how large a context.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A GGUF file or a model name from `strata models` (fetched on first use; default: $STRATA_MODEL, else the default model under $STRATA_HOME/models).")
    var model: String?

    @Option(help: "Kernels: simd (Strata's packed SIMD kernels and thread pool), blas (OpenBLAS) or naive (plain Swift loops).")
    var backend: Backend = .simd

    @Option(help: "Kernel threads: Strata's pool for simd, OpenBLAS's for blas; naive uses one (default: all cores).")
    var threads: Int?

    @Option(help: "Weights: native (kept in the file's types: Q4_1, Q4_K, F16, …) or f32 (dequantized at load).")
    var weights: WeightsMode = .native

    @Option(help: "simd with native Q4_0/Q4_1/Q8_0 weights: f32 activations (exact: the f32 results bit for bit), q24 (24-bit activation blocks and integer dot products: as accurate as f32; with AVX-512 VNNI the fastest of the two at any batch size, with AVX2 faster for one row, slower for many) or q8 (8-bit activation blocks, as llama.cpp: fastest, logits move by the rounding). The default is q24 where Strata's integer kernels run on AVX-512 VNNI, else f32.")
    var activations: ActivationMode = .standard

    @Option(name: .customLong("cache-type"), help: "KV cache element type: f32, or f16 (half the memory; attention reads it directly).")
    var cacheType: KVCacheType = .f32

    @Option(help: "Context length in tokens (default: the model's).")
    var ctx: Int?

    @Option(name: .customLong("batch-tokens"), help: "Most tokens per forward step; longer prompts are prefilled in chunks.")
    var batchTokens: Int = 512

    @Flag(help: "Print load details, memory use and the rendered prompt to stderr.")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024, got \(t)") }
        if let c = ctx, c < 1 || c > 1 << 22 { throw ValidationError("--ctx must be between 1 and 4194304, got \(c)") }
        if batchTokens < 1 || batchTokens > 1 << 16 { throw ValidationError("--batch-tokens must be between 1 and 65536, got \(batchTokens)") }
    }

    func contextOptions(slots: Int = 1, maxLogitsRows: Int? = nil) -> ContextOptions {
        ContextOptions(backend: backend, threads: threads, contextLength: ctx, slots: slots,
                       maxBatchTokens: batchTokens, maxLogitsRows: maxLogitsRows, activations: activations,
                       cacheType: cacheType)
    }

    func loadModel() throws -> Model {
        let path = try Model.resolvePath(model)
        let t0 = Date()
        let m = try Model(path: path, weights: weights)
        if verbose {
            let c = m.config
            printErr("model: \(path)")
            printErr("  \(c.architecture.name), \(c.blockCount) layers, embedding \(c.embeddingLength), heads \(c.headCount)/\(c.headCountKV) (head dim \(c.headDim)), ff \(c.feedForwardLength), vocab \(c.vocabSize), context \(c.contextLength)")
            printErr("  \(m.weights.parameterCount) parameters, \(formatBytes(m.weights.bytes)) as held (--weights \(weights)), loaded in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        }
        return m
    }

    func report(_ ctx: InferenceContext) {
        guard verbose else { return }
        printErr("context: \(ctx.slots) slot(s) × \(ctx.contextLength) positions, KV cache \(formatBytes(ctx.kvCacheBytes)) (\(ctx.cacheType)), activations \(formatBytes(ctx.scratchBytes)), backend \(ctx.backend), \(ctx.backend == .blas ? BLASThreads.configured : ctx.backend == .simd ? ctx.threads : 1) thread(s)\(ctx.packedWeightBytes > 0 ? ", packed weights " + formatBytes(ctx.packedWeightBytes) : "")")
    }
}

/// The sampler chain and stop conditions.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Temperature; 0 = greedy (argmax). Applied last in the chain.")
    var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off).")
    var topK: Int = 40
    @Option(name: .customLong("top-p"), help: "Nucleus: keep the most likely tokens up to cumulative probability p, in (0, 1].")
    var topP: Float = 0.95
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top token's probability, in [0, 1].")
    var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Penalise recent tokens' logits (1 = off).")
    var repeatPenalty: Float = 1.0
    @Option(name: .customLong("repeat-last-n"), help: "Recent tokens the penalties look at (0 = off, -1 = all).")
    var repeatLastN: Int = 64
    @Option(name: .customLong("frequency-penalty"), help: "Subtract this per occurrence of a recent token.")
    var frequencyPenalty: Float = 0
    @Option(name: .customLong("presence-penalty"), help: "Subtract this once from every recent token.")
    var presencePenalty: Float = 0
    @Option(help: "Random seed for sampling (default: random; the seed used is reported).")
    var seed: UInt64?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int = 256
    @Option(help: "Stop when the text contains this string (repeatable; not printed).")
    var stop: [String] = []
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-generation tokens.")
    var ignoreEOS = false

    var sampling: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature
        p.topK = topK
        p.topP = topP
        p.minP = minP
        p.repeatPenalty = repeatPenalty
        p.repeatLastN = repeatLastN
        p.frequencyPenalty = frequencyPenalty
        p.presencePenalty = presencePenalty
        p.seed = seed
        return p
    }

    var generation: GenerationParameters {
        var g = GenerationParameters()
        g.sampling = sampling
        g.maxTokens = maxTokens
        g.stop = stop
        g.ignoreEOS = ignoreEOS
        return g
    }

    func validate() throws {
        do { try generation.validate() } catch let e as SamplingError { throw ValidationError(e.description) }
    }

    static let chainHelp = "Sampler chain (llama.cpp's order): logit bias → repeat/frequency/presence penalties → top-k → top-p → min-p → temperature → draw (seeded). Temperature 0 is greedy."
}

/// The items of a comma-separated option value, trimmed (with `spaces`, spaces separate items
/// too). An empty item ("1,,2", a trailing comma) is an error naming its position, not dropped;
/// an empty value gives no items.
func listItems(_ s: String, option: String, spaces: Bool = false) throws -> [Substring] {
    let t = s.trimmingCharacters(in: .whitespaces)
    if t.isEmpty { return [] }
    let items = t.split(separator: ",", omittingEmptySubsequences: false).flatMap { item -> [Substring] in
        let words = spaces ? item.split(separator: " ") : [Substring(item.trimmingCharacters(in: .whitespaces))]
        return words.isEmpty ? [""] : words
    }
    if let i = items.firstIndex(where: \.isEmpty) {
        throw ValidationError("\(option): item \(i + 1) is empty (two commas in a row, or one at an end)")
    }
    return items
}

/// The cases of `T` a comma-separated option names (`--backend simd,blas`), by `listItems`.
func listCases<T: RawRepresentable & CaseIterable>(_ s: String, option: String) throws -> [T] where T.RawValue == String {
    try listItems(s, option: option).map { item in
        guard let v = T(rawValue: String(item)) else {
            let names = T.allCases.map(\.rawValue)
            throw ValidationError("\(option): '\(item)' is not \(names.dropLast().joined(separator: ", ")) or \(names.last ?? "")")
        }
        return v
    }
}

/// Parses "1,2,3" (or "1, 2, 3", or "1 2 3") into token ids.
func parseIds(_ s: String, option: String) throws -> [Int32] {
    let parts = try listItems(s, option: option, spaces: true)
    guard !parts.isEmpty else { throw ValidationError("\(option) is empty") }
    return try parts.map { part in
        guard let v = Int32(part), v >= 0 else { throw ValidationError("\(option): '\(part)' is not a token id") }
        return v
    }
}

/// A runtime error of the command line: exit status 1 and its text.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// All of stdin. A failing read (stdin a directory, a device error) is an error saying why, not
/// the trap of Foundation's `readDataToEndOfFile`.
func readStandardInput() throws -> Data {
    do {
        return try FileHandle.standardInput.readToEnd() ?? Data()
    } catch {
        let ns = error as NSError
        let posix = ns.domain == NSPOSIXErrorDomain ? ns : ns.userInfo[NSUnderlyingErrorKey] as? NSError
        let why = posix.map { String(cString: strerror(Int32($0.code))) } ?? ns.localizedDescription
        throw CommandFailure("cannot read standard input: \(why)")
    }
}

/// Reads TEXT, or stdin when TEXT is "-".
func readText(_ arg: String) throws -> String {
    guard arg == "-" else { return arg }
    let data = try readStandardInput()
    guard let s = String(data: data, encoding: .utf8) else { throw ValidationError("stdin is not valid UTF-8") }
    return s
}

/// JSON encoding with stable key order. A non-finite number (a rate over a zero time) is written
/// as the string "nan"/"inf"/"-inf" rather than failing the encoding.
func jsonString<T: Encodable>(_ value: T) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    do { return String(decoding: try e.encode(value), as: UTF8.self) } catch {
        return #"{"error": "cannot encode the report as JSON: "# + "\(error)".replacingOccurrences(of: "\"", with: "'") + #""}"#
    }
}

/// Makes whitespace visible: space ·, tab →, newline ↵, carriage return ␍, other controls as \u{..}.
func visible(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case " ": out += "·"
        case "\t": out += "→"
        case "\n": out += "↵"
        case "\r": out += "␍"
        default:
            if u.properties.generalCategory == .control { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
        }
    }
    return out
}

let stdoutIsTerminal = isatty(STDOUT_FILENO) == 1
let stderrIsTerminal = isatty(STDERR_FILENO) == 1

/// Writes to stdout immediately (streaming), through the stream `print` uses, so the two keep
/// their order. A failed write (a full disk, a closed pipe) ends the command with an error.
func emit(_ s: String) {
    var s = s
    let e = s.withUTF8 { strata_stdout_write($0.baseAddress, $0.count) }
    if e != 0 { outputFailed(e) }
}

/// Ends the command when standard output could not be written: exit status 1 and a line on
/// stderr saying why, instead of output silently lost (or a trap in Foundation's `write`). A
/// reader that went away (`strata … | head`) gets the quiet exit a shell expects (status 141, as
/// if by SIGPIPE).
func outputFailed(_ e: Int32) -> Never {
    if e == EPIPE { Foundation.exit(128 + SIGPIPE) }
    let why = e > 0 ? String(cString: strerror(e)) : "an earlier write failed"
    printErr("error: cannot write to standard output: \(why); the output is incomplete")
    Foundation.exit(1)
}
