import Foundation

/// One line of a `strata batch` input file: `{"id": …, "prompt": "…"}` or
/// `{"id": …, "messages": [{"role": …, "content": …}]}` with optional sampling fields.
///
/// Parsing never fails as a whole: a line that is not a JSON object, has no usable id or has a bad
/// field becomes a job whose `request` throws a `BatchLineError` saying what and on which line, so
/// every input line yields exactly one output line.
public struct BatchJob: @unchecked Sendable {
    /// 1-based line number in the input.
    public let line: Int
    /// The canonical id: `s:<string>`, `n:<integer>` (7, 7.0 and 7e0 are one id), or `#line<n>`
    /// for a line without a usable id.
    public let key: String
    /// The id exactly as given (a string, a number, or — for an error record — whatever it was).
    public let idValue: Any
    /// The line's content hash (`BatchJob.hash`): error records carry it, so a resumed job skips a
    /// line without an id only if that line still holds the same text.
    public let lineHash: String
    let object: [String: Any]
    /// Why the line could not even be read as a request (not JSON, no usable id), if so.
    public let parseError: String?

    public static let known: Set<String> = ["id", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                                            "repeat_penalty", "repeat_last_n", "frequency_penalty", "presence_penalty", "seed", "stop"]

    /// The prompt and the sampling parameters the line asks for, on top of `defaults`.
    public func parse(defaults: GenerationParameters) throws -> (prompt: Prompt, parameters: GenerationParameters) {
        if let e = parseError { throw BatchLineError(e) }
        let unknown = Set(object.keys).subtracting(Self.known)
        guard unknown.isEmpty else { throw BatchLineError("line \(line): unknown field(s) \(unknown.sorted().joined(separator: ", "))") }
        var p = defaults
        func number(_ k: String) throws -> Double? {
            guard let v = object[k] else { return nil }
            // JSON booleans arrive as NSNumber too; their type encoding is "c".
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { throw BatchLineError("line \(line): '\(k)' must be a number") }
            return n.doubleValue
        }
        func integer(_ k: String) throws -> Int? {
            guard let d = try number(k) else { return nil }
            guard d == d.rounded(), abs(d) < 1e15 else { throw BatchLineError("line \(line): '\(k)' must be an integer") }
            return Int(d)
        }
        if let v = try integer("max_tokens") { p.maxTokens = v }
        if let v = try number("temperature") { p.sampling.temperature = Float(v) }
        if let v = try number("top_p") { p.sampling.topP = Float(v) }
        if let v = try integer("top_k") { p.sampling.topK = v }
        if let v = try number("min_p") { p.sampling.minP = Float(v) }
        if let v = try number("repeat_penalty") { p.sampling.repeatPenalty = Float(v) }
        if let v = try integer("repeat_last_n") { p.sampling.repeatLastN = v }
        if let v = try number("frequency_penalty") { p.sampling.frequencyPenalty = Float(v) }
        if let v = try number("presence_penalty") { p.sampling.presencePenalty = Float(v) }
        if let v = try integer("seed") {
            guard v >= 0 else { throw BatchLineError("line \(line): 'seed' must be ≥ 0") }
            p.sampling.seed = UInt64(v)
        }
        if let s = object["stop"] {
            if let one = s as? String { p.stop = [one] }
            else if let many = s as? [String] { p.stop = many }
            else { throw BatchLineError("line \(line): 'stop' must be a string or an array of strings") }
        }
        do { try p.validate() } catch { throw BatchLineError("line \(line): \(error)") }
        let prompt: Prompt
        switch (object["prompt"], object["messages"]) {
        case let (text as String, nil):
            prompt = .text(text)
        case let (nil, list as [Any]):
            var messages: [ChatMessage] = []
            for m in list {
                guard let d = m as? [String: Any], let role = d["role"] as? String, let content = d["content"] as? String else {
                    throw BatchLineError("line \(line): each message needs string 'role' and 'content'")
                }
                messages.append(ChatMessage(role: role, content: content))
            }
            guard !messages.isEmpty else { throw BatchLineError("line \(line): 'messages' is empty") }
            prompt = .messages(messages)
        case (nil, nil): throw BatchLineError("line \(line): missing 'prompt' or 'messages'")
        case (.some, .some): throw BatchLineError("line \(line): give 'prompt' or 'messages', not both")
        default: throw BatchLineError("line \(line): 'prompt' must be a string and 'messages' an array")
        }
        return (prompt, p)
    }

    /// The line as a request: parsed, and its prompt tokenized (chat template for `messages`).
    public func request(engine: Engine, defaults: GenerationParameters) throws -> BatchRequest {
        let (prompt, p) = try parse(defaults: defaults)
        let ids: [Int32]
        do { ids = try engine.encode(prompt) } catch { throw BatchLineError("line \(line): \(error)") }
        guard !ids.isEmpty else { throw BatchLineError("line \(line): the prompt is empty") }
        return BatchRequest(id: key, promptIds: ids, parameters: p)
    }

    /// FNV-1a (64-bit, hex) of a line's bytes, whitespace at either end left out: stable across
    /// runs and machines (Swift's `Hasher` is seeded per process).
    public static func hash(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// A bad input line: the message says what and on which line.
public struct BatchLineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ s: String) { description = s }
}

/// The input as a whole is unusable (duplicate ids): nothing runs.
public struct BatchInputError: Error, CustomStringConvertible {
    public let description: String
}

/// The input, parsed and checked before any work: duplicate ids are an error for the whole job.
public struct BatchJobs: @unchecked Sendable {
    public private(set) var pending: [BatchJob] = []
    public private(set) var byKey: [String: BatchJob] = [:]

    /// `shard` (i, n): keep every n-th line starting at line i (0-based).
    public init(data: Data, shard: (Int, Int)?) throws {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var firstLine: [String: Int] = [:]
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            // Invalid UTF-8 is not repaired (that would change the prompt): the line gets an error record.
            let valid = String(validating: raw, as: UTF8.self)
            let text = (valid ?? String(decoding: raw, as: UTF8.self)).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            // Every line's id is checked for duplicates, the other shards' too (each shard of a
            // job sees the same input, so a duplicate anywhere would be written twice).
            let mine = shard.map { index % $0.1 == $0.0 } ?? true
            var object: [String: Any] = [:]
            var key = "#line\(number)"
            var idValue: Any = NSNull()
            var parseError: String?
            if let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] {
                object = o
                if let s = o["id"] as? String { key = Self.key(s); idValue = s }
                else if let n = o["id"] as? NSNumber, Self.isInteger(n) { key = Self.key(n); idValue = n }
                else if let bad = o["id"] {
                    // null, a boolean, a fraction, an array or an object: an error record that gives
                    // the id back exactly as it came.
                    idValue = bad
                    parseError = "line \(number): 'id' must be a string or an integer"
                }
                if key.hasPrefix("s:") || key.hasPrefix("n:"), let prev = firstLine[key] {
                    throw BatchInputError(description: "duplicate id \(o["id"]!) on input lines \(prev) and \(number)")
                }
                firstLine[key] = number
                if o["id"] == nil { parseError = "line \(number): missing 'id'" }
            } else {
                parseError = "line \(number): not a JSON object"
            }
            if valid == nil {
                // The id, read from the line with its bad bytes replaced, still names the record.
                parseError = "line \(number): not valid UTF-8 (byte \(Self.firstInvalidUTF8(raw) + 1) of the line); the input must be UTF-8"
            }
            guard mine else { continue }
            let job = BatchJob(line: number, key: key, idValue: idValue, lineHash: BatchJob.hash(text), object: object, parseError: parseError)
            pending.append(job)
            byKey[key] = job
        }
    }

    /// An integral JSON number (not a boolean, not a fraction).
    public static func isInteger(_ n: NSNumber) -> Bool {
        let type = String(cString: n.objCType)
        if type == "c" || type == "B" { return false }            // JSON true/false
        if type == "d" || type == "f" { return n.doubleValue.rounded() == n.doubleValue && abs(n.doubleValue) < 9e15 }
        return true
    }

    /// The key of a string id: its exact UTF-8 bytes (Swift's `String` equality would make
    /// "café" with a precomposed é and with e + U+0301 one id).
    public static func key(_ s: String) -> String {
        "s:" + s.utf8.map { String($0, radix: 16) }.joined(separator: ".")
    }

    /// The offset of the first byte that does not belong to valid UTF-8.
    static func firstInvalidUTF8(_ bytes: some Collection<UInt8>) -> Int {
        var offset = 0, it = bytes.makeIterator(), decoder = UTF8()
        while case let .scalarValue(u) = decoder.decode(&it) { offset += UTF8.width(u) }
        return offset
    }

    /// The key of an integer id, the same however the number was written (7, 7.0, 7e0).
    public static func key(_ n: NSNumber) -> String {
        let type = String(cString: n.objCType)
        return "n:" + (type == "d" || type == "f" ? String(Int64(n.doubleValue)) : n.stringValue)
    }

    /// The key an output record is remembered by on resume: its id's key, or for an error record
    /// without a usable id, its line number together with that line's hash (so editing the input
    /// never makes a resumed job skip a line it has not handled).
    /// Only the two kinds of record `strata batch` writes count (`text` or `error` beside the id):
    /// an input line given as output is no finished work.
    public static func doneKey(_ o: [String: Any]) -> String? {
        guard isOutputRecord(o) else { return nil }
        if let s = o["id"] as? String { return key(s) }
        if let n = o["id"] as? NSNumber, isInteger(n) { return key(n) }
        if let l = o["line"] as? Int, let h = o["line_hash"] as? String { return "#line\(l):\(h)" }
        return nil
    }

    /// A result (`id`, `text`, `finish_reason`) or an error record (`id`, `line`, `error`).
    public static func isOutputRecord(_ o: [String: Any]) -> Bool {
        o["id"] != nil && ((o["text"] is String && o["finish_reason"] is String) || (o["error"] is String && o["line"] is Int))
    }

    /// Drops the jobs already handled: those whose `doneKey` is in `done`.
    public mutating func skip(done: Set<String>) {
        pending.removeAll { done.contains($0.key.hasPrefix("#line") ? "\($0.key):\($0.lineHash)" : $0.key) }
    }
}
