/// Splits text into pieces before BPE, as the reference does for each `tokenizer.ggml.pre`.
///
/// A pre-tokenizer is a list of stages applied one after another: each stage splits every piece
/// of the previous one into its matches and the gaps between them (gaps are kept). Each stage is
/// a hand-written matcher for one regular expression, because general regex engines are several
/// times slower at this (and llama.cpp hand-codes its common patterns for the same reason).
public enum PreTokenizer: String, CaseIterable, Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    case gpt2
    /// Every digit alone (`\p{N}`), then the GPT-2 pattern (SmolLM, StarCoder).
    case smollm
    /// The Llama 3 pattern, numbers in runs of at most three.
    case llama3 = "llama-bpe"
    /// The Llama 3 pattern with single digits (Qwen2).
    case qwen2
    /// llama.cpp's fallback: punctuation runs, the GPT-2 pattern, number runs, digit triples.
    case `default`

    /// Names in `tokenizer.ggml.pre` that mean the same splitting as one of the cases.
    static let aliases: [String: PreTokenizer] = [
        "gpt-2": .gpt2, "mpt": .gpt2, "olmo": .gpt2, "jais": .gpt2,
        "starcoder": .smollm, "refact": .smollm, "command-r": .smollm, "codeshell": .smollm,
        "llama3": .llama3, "dbrx": .llama3, "smaug-bpe": .llama3,
        "stablelm2": .qwen2,
    ]

    public static func named(_ name: String) -> PreTokenizer? {
        PreTokenizer(rawValue: name) ?? aliases[name]
    }

    enum Stage {
        case eachNumber, gpt2, llama3(maxDigits: Int), punctuationRun, numberRun, asciiDigitTriple
    }

    var stages: [Stage] {
        switch self {
        case .gpt2: [.gpt2]
        case .smollm: [.eachNumber, .gpt2]
        case .llama3: [.llama3(maxDigits: 3)]
        case .qwen2: [.llama3(maxDigits: 1)]
        case .default: [.punctuationRun, .gpt2, .numberRun, .asciiDigitTriple]
        }
    }

    /// Splits `scalars` into pieces, returned as ranges of scalar indices in order.
    func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let classes = scalars.map(CharClass.of)
        var pieces = scalars.isEmpty ? [] : [0 ..< scalars.count]
        for stage in stages {
            var next: [Range<Int>] = []
            next.reserveCapacity(pieces.count * 2)
            for piece in pieces { Self.apply(stage, scalars, classes, piece, into: &next) }
            pieces = next
        }
        return pieces
    }

    private static func apply(_ stage: Stage, _ s: [Unicode.Scalar], _ c: [CharClass], _ piece: Range<Int>,
                              into out: inout [Range<Int>]) {
        var gapStart = piece.lowerBound
        var i = piece.lowerBound
        let end = piece.upperBound
        while i < end {
            let n = match(stage, s, c, i, end)
            if n == 0 { i += 1; continue }
            if gapStart < i { out.append(gapStart ..< i) }
            out.append(i ..< i + n)
            i += n
            gapStart = i
        }
        if gapStart < end { out.append(gapStart ..< end) }
    }

    /// Length of the match starting at `i` (0: none), never past `end`.
    private static func match(_ stage: Stage, _ s: [Unicode.Scalar], _ c: [CharClass], _ i: Int, _ end: Int) -> Int {
        @inline(__always) func run(_ from: Int, _ pred: (CharClass) -> Bool) -> Int {
            var j = from
            while j < end && pred(c[j]) { j += 1 }
            return j - from
        }
        switch stage {
        case .eachNumber:
            return c[i] == .number ? 1 : 0
        case .numberRun:
            return run(i) { $0 == .number }
        case .asciiDigitTriple:
            if i + 3 <= end, (0 ..< 3).allSatisfy({ (48 ... 57).contains(s[i + $0].value) }) { return 3 }
            return 0
        case .punctuationRun:
            return run(i) { $0 == .punctuation || $0 == .gpt2DefaultSymbol }
        case .gpt2:
            if let n = contraction(s, i, end, caseInsensitive: false) { return n }
            let lead = s[i] == " " && i + 1 < end ? 1 : 0
            let k = c[i + lead]
            if lead == 1 || !c[i].isSpace {
                if k == .letter { return lead + run(i + lead) { $0 == .letter } }
                if k == .number { return lead + run(i + lead) { $0 == .number } }
                if k.isOther { return lead + run(i + lead) { $0.isOther } }
            }
            // \s+(?!\S): a whitespace run, less its last character when a non-space follows.
            let ws = run(i) { $0.isSpace }
            if ws == 0 { return 0 }
            if i + ws == end || ws == 1 { return ws }
            return ws - 1
        case let .llama3(maxDigits):
            if let n = contraction(s, i, end, caseInsensitive: true) { return n }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if c[i] == .letter { return run(i) { $0 == .letter } }
            if c[i] != .number && c[i] != .newline && i + 1 < end && c[i + 1] == .letter {
                return 1 + run(i + 1) { $0 == .letter }
            }
            // \p{N}{1,maxDigits}
            if c[i] == .number { return min(maxDigits, run(i) { $0 == .number }) }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            let lead = s[i] == " " && i + 1 < end && c[i + 1].isOther ? 1 : 0
            if c[i + lead].isOther {
                let body = lead + run(i + lead) { $0.isOther }
                return body + run(i + body) { $0 == .newline }
            }
            // \s*[\r\n]+ : the whitespace run up to and including its last newline
            let ws = run(i) { $0.isSpace }
            if ws == 0 { return 0 }
            var lastNewline = -1
            for j in i ..< i + ws where c[j] == .newline { lastNewline = j }
            if lastNewline >= 0 { return lastNewline - i + 1 }
            // \s+(?!\S) | \s+
            if i + ws == end || ws == 1 { return ws }
            return ws - 1
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, optionally case-insensitive.
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < end else { return nil }
        func lower(_ x: Unicode.Scalar) -> UInt32 {
            caseInsensitive && (65 ... 90).contains(x.value) ? x.value + 32 : x.value
        }
        let a = lower(s[i + 1])
        if a == 115 || a == 116 || a == 109 || a == 100 { return 2 }  // s t m d
        if i + 2 < end {
            let b = lower(s[i + 2])
            if (a == 114 && b == 101) || (a == 118 && b == 101) || (a == 108 && b == 108) { return 3 }  // re ve ll
        }
        return nil
    }
}

/// The character classes the patterns distinguish.
enum CharClass: UInt8 {
    case letter, number, space, newline, punctuation, gpt2DefaultSymbol, other

    /// `\s` (White_Space); newlines are whitespace too.
    var isSpace: Bool { self == .space || self == .newline }
    /// `[^\s\p{L}\p{N}]`
    var isOther: Bool { self == .punctuation || self == .gpt2DefaultSymbol || self == .other }

    private static let ascii: [CharClass] = (0 ..< 128).map { classify(Unicode.Scalar(UInt8($0))) }

    @inline(__always)
    static func of(_ s: Unicode.Scalar) -> CharClass {
        s.value < 128 ? ascii[Int(s.value)] : classify(s)
    }

    private static func classify(_ s: Unicode.Scalar) -> CharClass {
        if s == "\n" || s == "\r" { return .newline }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return .punctuation
        default:
            // The symbols llama.cpp's fallback pattern lists beside \p{P}: $ + < = > ^ ~ |
            return "$+<=>^~|".unicodeScalars.contains(s) ? .gpt2DefaultSymbol : .other
        }
    }
}
