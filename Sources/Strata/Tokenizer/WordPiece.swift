import Foundation

/// BERT's WordPiece tokenizer, read from a Hugging Face `tokenizer.json`: the BertNormalizer
/// (clean text, spaces around CJK characters, accents stripped when the file says so — by default
/// whenever it lower-cases —, lower-case), the BertPreTokenizer (split at whitespace and around every
/// punctuation character), then greedy longest-match WordPiece with `##` continuations and
/// `[UNK]` for a word it cannot cover (or longer than `max_input_chars_per_word`), wrapped in
/// `[CLS] … [SEP]` and truncated to `maxLength` tokens in all.
public struct WordPieceTokenizer: Sendable {
    public let vocab: [String: Int32]
    /// The vocabulary by UTF-8 bytes, for matching pieces: a `String` key would also match a
    /// canonically equivalent spelling (é composed or decomposed), which tokenizers does not.
    let idOfBytes: [[UInt8]: Int32]
    public let tokens: [String]
    let unk: Int32, cls: Int32, sep: Int32
    let prefix: String
    let maxCharsPerWord: Int
    let lowercase: Bool, stripAccents: Bool, cleanText: Bool, chineseChars: Bool

    public var vocabularySize: Int { tokens.count }

    public init(tokenizerJSON data: Data, source: String = "tokenizer.json") throws {
        func bad(_ r: String) -> SafetensorsError { .badHeader(path: source, reason: r) }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw bad("not a JSON object") }
        guard let model = root["model"] as? [String: Any], model["type"] as? String == "WordPiece",
              let v = model["vocab"] as? [String: Any] else { throw bad("model is not WordPiece with a vocab") }
        var vocab: [String: Int32] = [:]
        var maxId = -1
        for (k, id) in v {
            guard let n = id as? Int, n >= 0, n < 10_000_000 else { throw bad("vocab id of '\(k)' is not a small non-negative integer") }
            vocab[k] = Int32(n); maxId = max(maxId, n)
        }
        var tokens = [String](repeating: "", count: maxId + 1)
        for (k, id) in vocab { tokens[Int(id)] = k }
        self.vocab = vocab
        idOfBytes = Dictionary(vocab.map { (Array($0.key.utf8), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.tokens = tokens
        let unkToken = model["unk_token"] as? String ?? "[UNK]"
        guard let unk = vocab[unkToken], let cls = vocab["[CLS]"], let sep = vocab["[SEP]"] else { throw bad("vocab lacks [UNK], [CLS] or [SEP]") }
        self.unk = unk; self.cls = cls; self.sep = sep
        prefix = model["continuing_subword_prefix"] as? String ?? "##"
        maxCharsPerWord = model["max_input_chars_per_word"] as? Int ?? 100
        let norm = root["normalizer"] as? [String: Any] ?? [:]
        lowercase = norm["lowercase"] as? Bool ?? true
        // tokenizers' BertNormalizer: strip_accents null means "as lowercase".
        stripAccents = (norm["strip_accents"] as? Bool) ?? lowercase
        cleanText = norm["clean_text"] as? Bool ?? true
        chineseChars = norm["handle_chinese_chars"] as? Bool ?? true
    }

    public init(folder: String) throws {
        let path = folder + "/tokenizer.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw SafetensorsError.missingTensor(path: path, name: "tokenizer.json") }
        try self.init(tokenizerJSON: data, source: path)
    }

    /// `[CLS] pieces… [SEP]`, at most `maxLength` ids (the pieces truncated to make room).
    public func encode(_ text: String, maxLength: Int = 256) -> [Int32] {
        var ids: [Int32] = [cls]
        let room = max(0, maxLength - 2)
        outer: for word in words(normalize(text)) {
            for id in wordPiece(word) {
                if ids.count - 1 >= room { break outer }
                ids.append(id)
            }
        }
        ids.append(sep)
        return ids
    }

    func normalize(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for s in text.unicodeScalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || (Self.isControl(s)) { continue }
                if Self.isWhitespace(s) { out.append(" "); continue }
            }
            if chineseChars && Self.isCJK(s) { out.append(" "); out.append(s); out.append(" "); continue }
            out.append(s)
        }
        // Accents are stripped before lower-casing, in tokenizers' order.
        var s = String(String.UnicodeScalarView(out))
        if stripAccents {
            s = String(String.UnicodeScalarView(s.decomposedStringWithCanonicalMapping.unicodeScalars.filter { !Self.isNonspacingMark($0) }))
        }
        if lowercase { s = s.lowercased() }
        return Array(s.unicodeScalars)
    }

    /// Whitespace-separated words, each punctuation character a word of its own.
    func words(_ scalars: [Unicode.Scalar]) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() { if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() } }
        for s in scalars {
            if Self.isWhitespace(s) { flush() }
            else if Self.isPunctuation(s) { flush(); words.append(String(Character(s))) }
            else { current.append(s) }
        }
        flush()
        return words
    }

    /// Greedy longest-match-first pieces of one word; `[UNK]` if any part cannot be matched.
    func wordPiece(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        if chars.count > maxCharsPerWord { return [unk] }
        var out: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32?
            while start < end {
                var piece = String(String.UnicodeScalarView(chars[start ..< end]))
                if start > 0 { piece = prefix + piece }
                if let id = idOfBytes[Array(piece.utf8)] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unk] }
            out.append(id)
            start = end
        }
        return out
    }

    // The character classes are those of tokenizers' BertNormalizer and BertPreTokenizer (Rust),
    // which sentence-transformers runs, not those of the original Python BERT. Whitespace is
    // Unicode's White_Space property (Rust's `char::is_whitespace`: U+2028 and U+2029 too, not
    // only Zs). Control characters (Cc, Cf and private use), punctuation and nonspacing marks come
    // from the `unicode_categories` crate, whose tables are Unicode 8.0's: a scalar assigned
    // later is none of them, and the few whose category has changed since count as in 8.0.
    // EncoderTests checks every code point against the tokenizers package.

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Assigned in Unicode 8.0 or before.
    static func inUnicode8(_ s: Unicode.Scalar) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return inUnicode8(s)
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33 ... 47).contains(v) || (58 ... 64).contains(v) || (91 ... 96).contains(v) || (123 ... 126).contains(v) { return true }
        // Other punctuation (Po) in Unicode 8.0, a nonspacing mark and a symbol now.
        if v == 0x111C9 || v == 0x166D { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return inUnicode8(s)
        default: return false
        }
    }

    /// What accent stripping removes after canonical decomposition: nonspacing marks (Mn).
    static func isNonspacingMark(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x1171E, 0x1734: return true                       // Mn in 8.0, spacing marks now
        case 0x111C9, 0x1885, 0x1886, 0xA9BD: return false      // Po, Lo, Lo and Mc in 8.0
        default: return s.properties.generalCategory == .nonspacingMark && inUnicode8(s)
        }
    }

    /// tokenizers' CJK ideograph ranges (its sixth starts at U+2B920, not BERT's U+2B820).
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return (0x4E00 ... 0x9FFF).contains(v) || (0x3400 ... 0x4DBF).contains(v) || (0x20000 ... 0x2A6DF).contains(v)
            || (0x2A700 ... 0x2B73F).contains(v) || (0x2B740 ... 0x2B81F).contains(v) || (0x2B920 ... 0x2CEAF).contains(v)
            || (0xF900 ... 0xFAFF).contains(v) || (0x2F800 ... 0x2FA1F).contains(v)
    }
}
