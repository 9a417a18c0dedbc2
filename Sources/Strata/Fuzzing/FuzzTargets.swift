import Foundation

/// What the libFuzzer harnesses (`Fuzz/`, `make fuzz`) run on each input, and what `make test`
/// replays over the saved corpus and crash reproducers (`Tests/Fuzz/`). Every entry point takes
/// arbitrary bytes and must return — errors are fine, a trap, a hang or an unbounded allocation is
/// a bug. Each returns a small summary so a replay can check it ran the code it claims to.
public enum FuzzTargets {
    /// The default model's tokenizer (49,152 tokens, 48,900 merges), for the tokenizer and chat
    /// template harnesses; exits with a message when the model is missing (`make model`).
    public static func defaultModelTokenizer() -> Tokenizer {
        do { return try Tokenizer(gguf: GGUFFile(path: Model.resolvePath(nil))) } catch {
            try? FileHandle.standardError.write(contentsOf: Data("fuzz: cannot load the default model's tokenizer: \(error)\n".utf8))
            exit(2)
        }
    }

    /// The GGUF reader on `data` as a whole file (in memory): header, metadata, tensor table; then
    /// what loading does next when that parses — the model config, the tokenizer, each tensor's
    /// byte range and the weights' shapes (matrices stay in the file's blocks; vectors are
    /// dequantized).
    @discardableResult
    public static func gguf(_ data: UnsafeRawBufferPointer) -> String {
        let file: GGUFFile
        do { file = try GGUFFile(file: MappedFile(copying: data, name: "fuzz.gguf")) } catch { return "header: \(error)" }
        var summary = "parsed \(file.tensors.count) tensors, \(file.metadata.count) keys"
        for t in file.tensors { file.withTensorBytes(t) { precondition($0.count == t.byteCount) } }
        if let tok = try? Tokenizer(gguf: file) { summary += ", tokenizer \(tok.vocabularySize)" }
        guard let config = try? ModelConfig(gguf: file) else { return summary }
        summary += ", config"
        guard let plan = try? config.architecture.plan(config, gguf: file) else { return summary }
        summary += ", plan"
        if (try? ModelWeights(gguf: file, plan: plan, mode: .native)) != nil { summary += ", weights" }
        return summary
    }

    /// The tokenizer on arbitrary text: `data` as UTF-8 (invalid sequences repaired) encoded plain
    /// and with control tokens parsed; then `data` read as little-endian 16- and 32-bit token ids
    /// (in and out of the vocabulary) decoded whole and through the streaming decoder, which must
    /// give the same text.
    @discardableResult
    public static func tokenizer(_ data: UnsafeRawBufferPointer, tokenizer tok: Tokenizer) -> String {
        let text = String(decoding: data, as: UTF8.self)
        let plain = tok.encode(text), special = tok.encode(text, special: true)
        for id in plain + special { precondition(id >= 0 && Int(id) < tok.vocabularySize, "encode produced id \(id)") }
        // Byte-level BPE round-trips any text whose bytes all have tokens; SentencePiece any text
        // without its space mark ▁ (U+2581), which decodes to a space.
        if !text.utf8.contains(where: tok.unrepresentableBytes.contains) && !(tok.sentencePiece != nil && text.contains("\u{2581}")) {
            precondition(tok.decode(plain, special: true) == text, "plain encoding does not round-trip")
        }
        var ids: [Int32] = []
        var i = 0
        while i + 1 < data.count {
            let lo = Int32(data[i]), hi = Int32(data[i + 1])
            ids.append(i % 4 == 0 && i + 3 < data.count ? Int32(bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24) : lo | hi << 8)
            i += 2
        }
        for special in [false, true] {
            var stream = StreamingDecoder(tokenizer: tok, special: special)
            var streamed = ""
            for id in ids { streamed += stream.append(id) }
            streamed += stream.flush()
            precondition(streamed == tok.decode(ids, special: special), "streaming decode differs from decode")
        }
        return "encoded \(plain.count)/\(special.count) tokens, decoded \(ids.count) ids"
    }

    /// Chat-template rendering: the rest of the input is split at 0x00; the first byte picks a
    /// template family, or (≥ 6) detection from the first part as a Jinja template; the parts
    /// (after the template) are role, content, role, content, …; roles
    /// are validated as the engine does, then the messages rendered and, with a tokenizer, encoded.
    @discardableResult
    public static func chatTemplate(_ data: UnsafeRawBufferPointer, tokenizer tok: Tokenizer?) -> String {
        guard let first = data.first else { return "empty" }
        let rest = UnsafeRawBufferPointer(rebasing: data[1...])
        let parts = rest.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let names = ChatTemplate.names
        let template: ChatTemplate
        var j = 0
        if Int(first) < names.count {
            template = (try? ChatTemplate.named(names[Int(first)], eos: "</s>")) ?? .chatml(defaultSystem: nil)
        } else {
            // Detection: the first part is a Jinja template.
            guard let t = try? ChatTemplate.detect(parts[0], eos: "</s>") else { return "not detected" }
            template = t
            j = 1
        }
        var messages: [ChatMessage] = []
        while j + 1 < parts.count { messages.append(ChatMessage(role: parts[j], content: parts[j + 1])); j += 2 }
        guard (try? template.validate(messages)) != nil else { return "\(template.name): roles refused" }
        let rendered = template.render(messages)
        var summary = "\(template.name): \(messages.count) messages"
        if let tok {
            let ids = tok.encode(rendered)
            for id in ids { precondition(id >= 0 && Int(id) < tok.vocabularySize) }
            // No injection: the control tokens in the ids are exactly those of the template's own
            // markup for these roles — the same as for the same messages with empty contents.
            let empty = tok.encode(template.render(messages.map { ChatMessage(role: $0.role, content: "") }))
            let control = { (ids: [Int32]) in ids.filter { tok.types[Int($0)] == .control } }
            precondition(control(ids) == control(empty), "message text or a role produced control tokens")
            summary += ", rendered"
        }
        return summary
    }

    /// The safetensors reader on `data` as a whole file (in memory): header length, header JSON,
    /// every tensor's dtype, shape, byte range and overlap; then each float tensor read out.
    @discardableResult
    public static func safetensors(_ data: UnsafeRawBufferPointer) -> String {
        let file: SafetensorsFile
        do { file = try SafetensorsFile(file: MappedFile(copying: data, name: "fuzz.safetensors")) } catch { return "header: \(error)" }
        var read = 0
        for t in file.tensors.values.sorted(by: { $0.name < $1.name }) where ["F32", "F16", "BF16"].contains(t.dtype) {
            if let f = try? file.floats(t.name, shape: t.shape) { precondition(f.count == t.elementCount); read += 1 }
        }
        return "parsed \(file.tensors.count) tensors, read \(read)"
    }

    /// The batch input parser: `data` as a JSONL file, every line parsed into a request's prompt
    /// and sampling parameters (as `strata batch` does before tokenizing).
    @discardableResult
    public static func batchInput(_ data: UnsafeRawBufferPointer) -> String {
        let jobs: BatchJobs
        do { jobs = try BatchJobs(data: Data(data), shard: nil) } catch { return "refused: \(error)" }
        var ok = 0
        for job in jobs.pending where (try? job.parse(defaults: GenerationParameters())) != nil { ok += 1 }
        return "\(jobs.pending.count) lines, \(ok) valid"
    }
}
