import ArgumentParser
import Foundation
import Strata

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Show how text splits into tokens: each token with its id and visible boundaries."
    )

    @Option(name: .long, help: "Path to a GGUF model (default: $STRATA_MODEL, else the default model).")
    var model: String?
    @Flag(help: "Parse special-token text (e.g. <|im_start|>) as single control tokens.")
    var special = false
    @Flag(help: "Print {\"ids\":[…],\"tokens\":[…]}.")
    var json = false
    @Argument(help: "Text to tokenize ('-' reads stdin).")
    var text: String

    struct Output: Encodable { let ids: [Int32]; let tokens: [String] }

    func run() throws {
        let gguf = try GGUFFile(path: try Model.resolvePath(model))
        let tokenizer = try Tokenizer(gguf: gguf)
        let input = try readText(text)
        let ids = tokenizer.encode(input, special: special)
        let dropped = Set(input.utf8).intersection(tokenizer.unrepresentableBytes)
        if !dropped.isEmpty {
            printErr("warning: the vocabulary has no token for byte(s) \(dropped.sorted().map { String(format: "0x%02X", $0) }.joined(separator: ", ")); they are dropped, as the reference tokenizers drop them")
        }
        if json {
            print(jsonString(Output(ids: ids, tokens: ids.map { tokenizer.piece($0) })))
            return
        }
        let colors = ["\u{1B}[48;5;153m\u{1B}[30m", "\u{1B}[48;5;223m\u{1B}[30m", "\u{1B}[48;5;151m\u{1B}[30m", "\u{1B}[48;5;218m\u{1B}[30m"]
        let reset = "\u{1B}[0m"
        var line = ""
        for (i, id) in ids.enumerated() {
            let piece = visible(tokenizer.piece(id))
            line += stdoutIsTerminal ? colors[i % colors.count] + piece + reset : "[" + piece + "]"
        }
        print(line)
        print(ids.map { "\($0)" }.joined(separator: " "))
        for id in ids { print(String(format: "%7d  ", id) + "'" + visible(tokenizer.piece(id)) + "'") }
        print("\(ids.count) tokens, \(input.utf8.count) bytes")
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Turn token ids (comma- or space-separated) back into text."
    )
    @Option(name: .long, help: "Path to a GGUF model.")
    var model: String?
    @Flag(help: "Render control tokens (e.g. <|im_end|>) as their text.")
    var special = false
    @Argument(help: "Token ids, e.g. 504,3575,282 ('-' reads stdin).")
    var ids: String

    func validate() throws { if ids != "-" { _ = try parseIds(ids, option: "IDS") } }

    func run() throws {
        let tokenizer = try Tokenizer(gguf: try GGUFFile(path: try Model.resolvePath(model)))
        let list = try parseIds(try readText(ids).trimmingCharacters(in: .whitespacesAndNewlines), option: "IDS")
        for id in list where Int(id) >= tokenizer.vocabularySize {
            throw ValidationError("token id \(id) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
        }
        print(tokenizer.decode(list, special: special))
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a GGUF file's metadata and tensors."
    )
    @Option(name: .long, help: "Path to a GGUF model.")
    var model: String?
    @Flag(help: "List every tensor.")
    var tensors = false
    @Option(help: "Weights for the memory estimate: native (the file's types) or f32 (dequantized).")
    var weights: WeightsMode = .native
    @Option(help: "Context length for the memory estimate (default: the model's).")
    var ctx: Int?

    func validate() throws {
        if let c = ctx, c < 1 || c > 1 << 22 { throw ValidationError("--ctx must be between 1 and 4194304, got \(c)") }
    }

    func run() throws {
        let path = try Model.resolvePath(model)
        let g = try GGUFFile(path: path)
        print("file: \(path)\nGGUF version \(g.version), \(g.keys.count) metadata keys, \(g.tensors.count) tensors, alignment \(g.alignment)")
        for k in g.keys {
            let v = g.metadata[k]!
            if case let .array(a) = v {
                print("  \(k) = [\(a.count) items] " + a.prefix(8).map { short($0) }.joined(separator: ", ") + (a.count > 8 ? ", …" : ""))
            } else {
                print("  \(k) = \(short(v))")
            }
        }
        if tensors {
            for t in g.tensors { print("  \(t.name)  \(t.type)  \(t.dims)  \(formatBytes(t.byteCount))") }
        }
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for t in g.tensors { byType["\(t.type)", default: (0, 0)].count += 1; byType["\(t.type)", default: (0, 0)].bytes += t.byteCount }
        print("tensors by type:")
        for (type, v) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
            print("  \(type.padding(toLength: 6, withPad: " ", startingAt: 0)) \(String(v.count).leftPad(5)) tensors  \(formatBytes(v.bytes).leftPad(10))")
        }
        let tensorBytes = g.tensors.reduce(0) { $0 + $1.byteCount }
        print("  total  \(String(g.tensors.count).leftPad(5)) tensors  \(formatBytes(tensorBytes).leftPad(10))")
        if let c = try? ModelConfig(gguf: g) {
            print("config: \(c.architecture.name), \(c.blockCount) layers, embedding \(c.embeddingLength), heads \(c.headCount)/\(c.headCountKV), head dim \(c.headDim), ff \(c.feedForwardLength), vocab \(c.vocabSize), context \(c.contextLength), rope base \(c.ropeBase)")
            // What a default context holds: load the model and size one (the KV cache is reserved,
            // not touched, so this costs little).
            // The KV cache and activations from a context's own sizing (a naive context: nothing is
            // packed or touched), the packed weights from their layout.
            let m = try Model(path: path, weights: weights)
            do {
                try describeContext(m)
            } catch let InferenceError.outOfMemory(needed, available, detail) {
                // Too large for this machine: say what it would take instead of failing.
                print("a context (1 slot × \(ctx ?? c.contextLength) positions) would need \(formatBytes(needed)) (\(detail)), more than the \(formatBytes(available)) available here; pass a smaller --ctx")
            }
        }
        print("OpenBLAS core: \(MachineInfo.openBLASCore) (OPENBLAS_CORETYPE=\(MachineInfo.openBLASCoreType))")
        if let warning = MachineInfo.openBLASWarning() { print(warning) }
    }

    /// What a context of `--ctx` positions on `m` holds (weights, KV cache, activations).
    private func describeContext(_ m: Model) throws {
        let context = try InferenceContext(model: m, options: ContextOptions(backend: .naive, contextLength: ctx))
        let vectors = m.weights.vectors.reduce(0) { $0 + $1.count * 4 }
        let activations = ActivationMode.standard   // the command line's default
        let resident = m.packedWeightBytes(activations: activations) + vectors + (weights == .f32 ? m.weights.bytes - vectors : 0)
        print("a context (simd, --weights \(weights)\(weights == .native ? ", --activations \(activations)" : ""), 1 slot × \(context.contextLength) positions) holds:")
        print("  weights resident  \(formatBytes(resident).leftPad(10))  (\(weights == .native ? "panels of the file's blocks; the mapped pages are released" : "float32, and the simd backend's packed copy"))")
        print("  KV cache          \(formatBytes(context.kvCacheBytes).leftPad(10))  (--cache-type f32; f16: \(formatBytes(context.kvCacheBytes / 2)); reserved, memory only for the positions written)")
        print("  activations       \(formatBytes(context.scratchBytes).leftPad(10))  (as naive/blas size them, score matrix included)")
    }

    func short(_ v: GGUFValue) -> String {
        switch v {
        case let .string(s): return "\"" + visible(String(s.prefix(120))) + (s.count > 120 ? "…" : "") + "\""
        case let .array(a): return "[\(a.count) items]"
        default:
            if let i = v.intValue { return String(i) }
            if let d = v.doubleValue { return String(d) }
            if let b = v.boolValue { return String(b) }
            return "\(v)"
        }
    }
}
