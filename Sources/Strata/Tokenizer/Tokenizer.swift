/// Errors in a model's tokenizer metadata.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unsupportedModel(String)
    case unknownPreTokenizer(String, known: [String])
    case invalidVocabulary(String)
    case badMerge(index: Int, text: String)

    public var description: String {
        switch self {
        case let .unsupportedModel(m):
            return "tokenizer.ggml.model '\(m)' is not supported (Strata implements 'gpt2', byte-level BPE, and 'llama', SentencePiece)"
        case let .unknownPreTokenizer(p, known):
            return "tokenizer.ggml.pre '\(p)' is not known to Strata (known: \(known.joined(separator: ", "))); refusing to guess, since a wrong split gives wrong token ids"
        case let .invalidVocabulary(why): return "invalid tokenizer vocabulary: \(why)"
        case let .badMerge(i, text): return "tokenizer.ggml.merges[\(i)] '\(text)' does not name two tokens whose concatenation is a token"
        }
    }
}

/// Token types as GGUF stores them (`tokenizer.ggml.token_type`).
public enum TokenType: Int32, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// A tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata: byte-level BPE (`gpt2`) or
/// SentencePiece (`llama`).
///
/// Encoding: special-token split (control tokens when asked; user-defined tokens always, as
/// llama.cpp) → BPE: pre-tokenizer chosen by `tokenizer.ggml.pre` → bytes → merges by rank; or
/// SentencePiece: `▁` for spaces → merges by score → byte fallback. Decoding maps each token to
/// its bytes (the byte map's inverse, or `▁` back to spaces and `<0xXX>` to its byte).
public final class Tokenizer: Sendable {
    public let tokens: [String]
    public let types: [TokenType]
    public let preTokenizer: PreTokenizer
    public let bos: Int32?
    public let eos: Int32?
    public let addBOS: Bool
    public let addEOS: Bool
    /// Tokens that end generation (EOS, end-of-turn markers, and the FIM markers llama.cpp adds).
    public let endOfGeneration: Set<Int32>
    let bpe: BPE?
    let sentencePiece: SentencePiece?
    /// SentencePiece: a space is put before text that starts the input or follows a special token.
    public let addSpacePrefix: Bool
    /// The bytes each token stands for (control tokens: their text).
    let bytes: [[UInt8]]
    /// Control and user-defined tokens, longest first: matched in text when special parsing is on.
    let specials: [(bytes: [UInt8], id: Int32)]
    /// The user-defined ones among them, matched in all text.
    let userDefined: [(bytes: [UInt8], id: Int32)]
    let idOfText: [String: Int32]
    /// Bytes the vocabulary has no token for; text containing them does not round-trip.
    public let unrepresentableBytes: Set<UInt8>

    public var vocabularySize: Int { tokens.count }

    public convenience init(gguf: GGUFFile) throws {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "gpt2" || model == "llama" else { throw TokenizerError.unsupportedModel(model) }
        let tokens = try gguf.strings("tokenizer.ggml.tokens")
        var types = [TokenType](repeating: .normal, count: tokens.count)
        if let raw = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue {
            guard raw.count == tokens.count else {
                throw TokenizerError.invalidVocabulary("token_type has \(raw.count) entries for \(tokens.count) tokens")
            }
            for (i, v) in raw.enumerated() {
                guard let n = v.intValue, let t = Int32(exactly: n).flatMap(TokenType.init(rawValue:)) else {
                    throw TokenizerError.invalidVocabulary("token_type[\(i)] = \(v) is not a token type (0...6)")
                }
                types[i] = t
            }
        }
        func id(_ key: String) -> Int32? {
            guard let v = gguf.metadata[key]?.intValue, v >= 0, v < tokens.count else { return nil }
            return Int32(v)
        }
        var bos = id("tokenizer.ggml.bos_token_id"), eos = id("tokenizer.ggml.eos_token_id")
        let eot = id("tokenizer.ggml.eot_token_id")
        if model == "llama" {
            // llama.cpp's SentencePiece defaults when the file names none: <unk> 0, <s> 1, </s> 2.
            func fallback(_ key: String, _ v: Int32) -> Int32? { gguf.metadata[key] == nil && Int(v) < tokens.count ? v : nil }
            bos = bos ?? fallback("tokenizer.ggml.bos_token_id", 1)
            eos = eos ?? fallback("tokenizer.ggml.eos_token_id", 2)
            let unknown = id("tokenizer.ggml.unknown_token_id") ?? fallback("tokenizer.ggml.unknown_token_id", 0)
            guard let raw = gguf.metadata["tokenizer.ggml.scores"]?.arrayValue, raw.count == tokens.count else {
                throw TokenizerError.invalidVocabulary("a SentencePiece vocabulary needs tokenizer.ggml.scores, one per token (\(tokens.count))")
            }
            var scores = [Float](repeating: 0, count: tokens.count)
            for (i, v) in raw.enumerated() {
                guard let d = v.doubleValue, d.isFinite else { throw TokenizerError.invalidVocabulary("tokenizer.ggml.scores[\(i)] = \(v) is not a finite number") }
                scores[i] = Float(d)
            }
            try self.init(tokens: tokens, types: types, scores: scores, bos: bos, eos: eos, eot: eot,
                          unknown: unknown,
                          addBOS: gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? true,
                          addEOS: gguf.metadata["tokenizer.ggml.add_eos_token"]?.boolValue ?? false,
                          addSpacePrefix: gguf.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true)
            return
        }
        let preName = (try? gguf.string("tokenizer.ggml.pre")) ?? "default"
        guard let pre = PreTokenizer.named(preName) else {
            throw TokenizerError.unknownPreTokenizer(preName, known: PreTokenizer.allCases.map(\.rawValue) + PreTokenizer.aliases.keys.sorted())
        }
        let merges = try gguf.strings("tokenizer.ggml.merges")
        try self.init(tokens: tokens, types: types, merges: merges, preTokenizer: pre, bos: bos, eos: eos, eot: eot,
                      addBOS: gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false,
                      addEOS: gguf.metadata["tokenizer.ggml.add_eos_token"]?.boolValue ?? false)
    }

    /// A byte-level BPE tokenizer.
    public convenience init(tokens: [String], types: [TokenType], merges: [String], preTokenizer: PreTokenizer,
                bos: Int32?, eos: Int32?, eot: Int32? = nil, addBOS: Bool = false, addEOS: Bool = false) throws {
        try self.init(tokens: tokens, types: types, merges: merges, scores: nil, preTokenizer: preTokenizer, bos: bos, eos: eos,
                      eot: eot, unknown: nil, addBOS: addBOS, addEOS: addEOS, addSpacePrefix: false)
    }

    /// A SentencePiece tokenizer: pieces with their scores (`▁` for a space, `<0xXX>` byte tokens).
    public convenience init(tokens: [String], types: [TokenType], scores: [Float], bos: Int32?, eos: Int32?, eot: Int32? = nil,
                            unknown: Int32? = nil, addBOS: Bool = true, addEOS: Bool = false, addSpacePrefix: Bool = true) throws {
        try self.init(tokens: tokens, types: types, merges: [], scores: scores, preTokenizer: .gpt2, bos: bos, eos: eos,
                      eot: eot, unknown: unknown, addBOS: addBOS, addEOS: addEOS, addSpacePrefix: addSpacePrefix)
    }

    private init(tokens: [String], types: [TokenType], merges: [String], scores: [Float]?, preTokenizer: PreTokenizer,
                 bos: Int32?, eos: Int32?, eot: Int32?, unknown: Int32?, addBOS: Bool, addEOS: Bool, addSpacePrefix: Bool) throws {
        guard !tokens.isEmpty, tokens.count < Int(Int32.max), types.count == tokens.count else {
            throw TokenizerError.invalidVocabulary("\(tokens.count) tokens, \(types.count) types")
        }
        if let scores, scores.count != tokens.count {
            throw TokenizerError.invalidVocabulary("\(scores.count) scores for \(tokens.count) tokens")
        }
        self.addSpacePrefix = scores != nil && addSpacePrefix
        self.tokens = tokens
        // As llama.cpp: a user-defined token that spells an end-of-turn or fill-in-the-middle
        // marker is a control token (matched only with special parsing, hidden when decoding).
        var types = types
        for (i, t) in tokens.enumerated() where types[i] == .userDefined && Self.endOfGenerationTexts.contains(t) { types[i] = .control }
        self.types = types
        self.preTokenizer = preTokenizer
        self.bos = bos
        self.eos = eos
        self.addBOS = addBOS && bos != nil
        self.addEOS = addEOS && eos != nil

        var idOfText: [String: Int32] = [:]
        idOfText.reserveCapacity(tokens.count)
        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(tokens.count)
        var byteTokens = [Int32](repeating: -1, count: 256)
        var specials: [(bytes: [UInt8], id: Int32)] = []
        var idOfBytes: [[UInt8]: Int32] = [:]
        if scores != nil { idOfBytes.reserveCapacity(tokens.count) }
        for (i, t) in tokens.enumerated() {
            if idOfText[t] == nil { idOfText[t] = Int32(i) }
            switch types[i] {
            case .control, .userDefined, .unknown:
                bytes.append(Array(t.utf8))
                // Unknown-type tokens (`<unk>`) are matched with special parsing too, as llama.cpp.
                if !t.isEmpty { specials.append((Array(t.utf8), Int32(i))) }
            default:
                if scores != nil {
                    // SentencePiece: `<0xXX>` byte tokens, and pieces with `▁` for spaces.
                    if types[i] == .byte, let v = SentencePiece.byteValue(t) {
                        if byteTokens[Int(v)] < 0 { byteTokens[Int(v)] = Int32(i) }
                        bytes.append([v])
                    } else {
                        bytes.append(Self.unescapeSpaces(Array(t.utf8)))
                    }
                } else {
                    let b = ByteMap.bytes(of: t) ?? Array(t.utf8)
                    if b.count == 1 && byteTokens[Int(b[0])] < 0 { byteTokens[Int(b[0])] = Int32(i) }
                    bytes.append(b)
                }
            }
            // llama.cpp looks pieces up by text whatever their type: the last of equal texts wins.
            if scores != nil { idOfBytes[Array(t.utf8)] = Int32(i) }
        }
        // Bytes with no token (SmolLM2 lacks 21, e.g. 0x04 and 0xF5–0xFF) are dropped when encoding,
        // as llama.cpp and Hugging Face drop them; `unrepresentableBytes` lists them.
        unrepresentableBytes = Set((0 ..< 256).filter { byteTokens[$0] < 0 }.map(UInt8.init))
        specials.sort { $0.bytes.count > $1.bytes.count }
        self.bytes = bytes
        self.specials = specials
        userDefined = specials.filter { types[Int($0.id)] == .userDefined }
        self.idOfText = idOfText
        if let scores {
            sentencePiece = SentencePiece(idOfBytes: idOfBytes, scores: scores, byteTokens: byteTokens, unknown: unknown)
            bpe = nil
        } else {
            sentencePiece = nil
            var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
            table.reserveCapacity(merges.count)
            for (rank, m) in merges.enumerated() {
                let parts = m.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, let a = idOfText[String(parts[0])], let b = idOfText[String(parts[1])],
                      let merged = idOfText[String(parts[0]) + String(parts[1])] else {
                    throw TokenizerError.badMerge(index: rank, text: m)
                }
                let key = BPE.key(a, b)
                if table[key] == nil { table[key] = (Int32(rank), merged) }
            }
            bpe = BPE(merges: table, byteTokens: byteTokens)
        }

        var eog = Set<Int32>()
        if let eos { eog.insert(eos) }
        if let eot { eog.insert(eot) }
        for text in Self.endOfGenerationTexts { if let i = idOfText[text], types[Int(i)] == .control || types[Int(i)] == .userDefined { eog.insert(i) } }
        endOfGeneration = eog
    }

    /// Token texts that end a turn in common chat formats, plus FIM repo/pad markers (as llama.cpp).
    static let endOfGenerationTexts = [
        "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "<|return|>", "<|call|>", "<reponame>", "<|repo_name|>", "<|fim_pad|>", "<fim_pad>",
    ]

    /// The id of a token by its exact text.
    public func id(of text: String) -> Int32? { idOfText[text] }

    // MARK: - Encoding

    /// Token ids for `text`. With `special`, control and user-defined token texts become their
    /// single ids; without, they are ordinary characters. `addSpecial` adds BOS/EOS as the model
    /// asks (never a second BOS when the text already starts with one).
    public func encode(_ text: String, special: Bool = false, addSpecial: Bool = false) -> [Int32] {
        let utf8 = Array(text.utf8)
        return encode(fragments: special ? splitSpecial(utf8) : [.text(0 ..< utf8.count)], utf8: utf8, addSpecial: addSpecial)
    }

    func encode(fragments: [Fragment], utf8: [UInt8], addSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(utf8.count / 3 + 4)
        var cache: [ArraySlice<UInt8>: Range<Int>] = [:]
        var cached: [Int32] = []
        // User-defined tokens are matched in all text, special parsing or not (as llama.cpp).
        let split = userDefined.isEmpty ? fragments : fragments.flatMap { f -> [Fragment] in
            if case let .text(r) = f { return splitSpecial(utf8, range: r, tokens: userDefined) }
            return [f]
        }
        var afterSpecial = true
        for fragment in split {
            switch fragment {
            case let .special(id):
                out.append(id)
                afterSpecial = true
            case let .text(range):
                if let sentencePiece {
                    // A space before text that starts the input or follows a special token.
                    if addSpacePrefix && afterSpecial {
                        sentencePiece.encode([0x20] + utf8[range], into: &out)
                    } else {
                        sentencePiece.encode(utf8[range], into: &out)
                    }
                } else {
                    encodeText(utf8[range], into: &out, cache: &cache, cached: &cached)
                }
                afterSpecial = false
            }
        }
        if addSpecial {
            if addBOS, let bos, out.first != bos { out.insert(bos, at: 0) }
            if addEOS, let eos, out.last != eos { out.append(eos) }
        }
        return out
    }

    enum Fragment: Equatable { case text(Range<Int>), special(Int32) }

    /// Splits text at special-token occurrences, longest token first (as llama.cpp does).
    func splitSpecial(_ b: [UInt8]) -> [Fragment] { splitSpecial(b, range: 0 ..< b.count, tokens: specials) }

    func splitSpecial(_ b: [UInt8], range: Range<Int>, tokens: [(bytes: [UInt8], id: Int32)]) -> [Fragment] {
        var fragments: [Fragment] = [.text(range)]
        for (tb, id) in tokens {
            guard let first = tb.first else { continue }
            var next: [Fragment] = []
            for f in fragments {
                guard case var .text(r) = f else { next.append(f); continue }
                var i = r.lowerBound
                while i + tb.count <= r.upperBound {
                    if b[i] == first && b[i ..< i + tb.count].elementsEqual(tb) {
                        if r.lowerBound < i { next.append(.text(r.lowerBound ..< i)) }
                        next.append(.special(id))
                        i += tb.count
                        r = i ..< r.upperBound
                    } else {
                        i += 1
                    }
                }
                if !r.isEmpty { next.append(.text(r)) }
            }
            fragments = next
        }
        return fragments
    }

    /// `▁` (U+2581) back to a space.
    static func unescapeSpaces(_ b: [UInt8]) -> [UInt8] {
        guard b.count >= 3 else { return b }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if i + 2 < b.count && b[i] == 0xE2 && b[i + 1] == 0x96 && b[i + 2] == 0x81 { out.append(0x20); i += 3 } else { out.append(b[i]); i += 1 }
        }
        return out
    }

    private func encodeText(_ bytes: ArraySlice<UInt8>, into out: inout [Int32],
                            cache: inout [ArraySlice<UInt8>: Range<Int>], cached: inout [Int32]) {
        if bytes.isEmpty { return }
        let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        // Byte offset of each scalar in `bytes` (valid UTF-8 in, so lengths add up).
        var offsets = [Int](repeating: 0, count: scalars.count + 1)
        var o = bytes.startIndex
        for (i, s) in scalars.enumerated() {
            offsets[i] = o
            o += UTF8.width(s)
        }
        offsets[scalars.count] = o
        for piece in preTokenizer.split(scalars) {
            let word = bytes[offsets[piece.lowerBound] ..< offsets[piece.upperBound]]
            if let hit = cache[word] {
                out.append(contentsOf: cached[hit])
                continue
            }
            let start = out.count
            bpe!.encode(word, into: &out)
            if cache.count < 1 << 16 {
                cache[word] = cached.count ..< cached.count + (out.count - start)
                cached.append(contentsOf: out[start...])
            }
        }
    }

    // MARK: - Decoding

    /// The bytes a token stands for; control tokens give their text only with `special`.
    public func bytes(of id: Int32, special: Bool = false) -> ArraySlice<UInt8> {
        guard id >= 0 && Int(id) < bytes.count else { return [] }
        if !special && (types[Int(id)] == .control || types[Int(id)] == .unknown) { return [] }
        return bytes[Int(id)][...]
    }

    /// Text of a sequence of ids. Invalid UTF-8 (a sequence cut mid-character) becomes U+FFFD.
    /// (A SentencePiece model that puts a space before the text keeps it here, so whole and
    /// streamed text agree; llama.cpp's detokenizer drops it.)
    public func decode(_ ids: some Sequence<Int32>, special: Bool = false) -> String {
        var b: [UInt8] = []
        for id in ids { b.append(contentsOf: bytes(of: id, special: special)) }
        return String(decoding: b, as: UTF8.self)
    }

    /// A token's own text as the model sees it (for display), control tokens included.
    public func piece(_ id: Int32) -> String {
        String(decoding: bytes(of: id, special: true), as: UTF8.self)
    }
}

/// Turns token ids into text as they arrive, emitting only complete UTF-8: a character spread over
/// several tokens is printed once, whole.
public struct StreamingDecoder: Sendable {
    let tokenizer: Tokenizer
    var pending: [UInt8] = []
    let special: Bool

    public init(tokenizer: Tokenizer, special: Bool = false) {
        self.tokenizer = tokenizer
        self.special = special
        pending.reserveCapacity(16)
    }

    /// Adds a token; returns the text that is now complete (possibly empty).
    public mutating func append(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.bytes(of: id, special: special))
        let keep = Self.incompleteSuffixLength(pending)
        if keep == pending.count { return "" }
        let text = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Whatever is still held back (an incomplete character becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll(keepingCapacity: true) }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Bytes at the end that start a character whose remaining bytes have not arrived yet.
    static func incompleteSuffixLength(_ b: [UInt8]) -> Int {
        var i = b.count - 1
        var continuation = 0
        while i >= 0 && continuation < 3 && b[i] & 0xC0 == 0x80 { i -= 1; continuation += 1 }
        guard i >= 0 else { return 0 }
        let lead = b[i]
        let need: Int
        switch lead {
        case 0xC2 ... 0xDF: need = 2
        case 0xE0 ... 0xEF: need = 3
        case 0xF0 ... 0xF4: need = 4
        default: return 0  // ASCII or an invalid lead: nothing to wait for
        }
        let have = b.count - i
        return have < need ? have : 0
    }
}
