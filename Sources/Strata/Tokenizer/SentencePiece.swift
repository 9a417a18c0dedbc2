/// SentencePiece-style BPE by score (GGUF `tokenizer.ggml.model = llama`, as llama.cpp runs it):
/// spaces become `▁`, the text starts as one symbol per UTF-8 character, and the adjacent pair
/// whose concatenation is the vocabulary piece with the highest score is merged (leftmost on ties)
/// until no pair forms a piece. A symbol that is not a piece falls back to its bytes, one
/// `<0xXX>` token each.
struct SentencePiece: Sendable {
    /// Each piece's id by its exact bytes (byte-exact: no Unicode equivalence).
    let idOfBytes: [[UInt8]: Int32]
    let scores: [Float]
    /// The `<0xXX>` token of each byte (-1: none).
    let byteTokens: [Int32]
    let unknown: Int32?

    static let space: [UInt8] = [0xE2, 0x96, 0x81]   // ▁ U+2581

    private struct Candidate: Comparable {
        let score: Float, left: Int, right: Int, length: Int
        // A min-heap: "smaller" is better, the higher score, then the leftmost.
        static func < (a: Candidate, b: Candidate) -> Bool { a.score != b.score ? a.score > b.score : a.left < b.left }
    }

    /// Appends the ids of `text` (one fragment between special tokens) to `out`.
    func encode(_ text: some Collection<UInt8>, into out: inout [Int32]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count + 8)
        for b in text { if b == 0x20 { bytes += Self.space } else { bytes.append(b) } }
        if bytes.isEmpty { return }
        // Symbols: start and length in `bytes`, linked both ways (-1: none).
        var start: [Int] = [], length: [Int] = []
        var i = 0
        while i < bytes.count {
            let n = min(Self.utf8Length(bytes[i]), bytes.count - i)
            start.append(i); length.append(n)
            i += n
        }
        let count = start.count
        var prev = (0 ..< count).map { $0 - 1 }
        var next = (0 ..< count).map { $0 + 1 < count ? $0 + 1 : -1 }
        var heap = MinHeap<Candidate>()
        func consider(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let s = start[l], n = length[l] + length[r]
            guard let id = idOfBytes[Array(bytes[s ..< s + n])] else { return }
            heap.push(Candidate(score: scores[Int(id)], left: l, right: r, length: n))
        }
        for j in 1 ..< max(1, count) { consider(j - 1, j) }
        while let c = heap.pop() {
            let l = c.left, r = c.right
            // Stale: one side was merged away or has grown since.
            guard length[l] > 0, length[r] > 0, length[l] + length[r] == c.length, next[l] == r else { continue }
            length[l] += length[r]
            length[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            consider(prev[l], l)
            consider(l, next[l])
        }
        var s = 0
        while s >= 0 {
            let piece = Array(bytes[start[s] ..< start[s] + length[s]])
            if let id = idOfBytes[piece] {
                out.append(id)
            } else {
                for b in piece {
                    let t = byteTokens[Int(b)]
                    if t >= 0 { out.append(t) } else if let unknown { out.append(unknown) }
                }
            }
            s = next[s]
        }
    }

    /// Bytes in the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
    static func utf8Length(_ lead: UInt8) -> Int {
        switch lead {
        case 0xF0...: 4
        case 0xE0...: 3
        case 0xC0...: 2
        default: 1
        }
    }

    /// `<0x41>` → 0x41.
    static func byteValue(_ piece: String) -> UInt8? {
        let u = Array(piece.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3 ..< 5], as: UTF8.self), radix: 16)
    }
}
