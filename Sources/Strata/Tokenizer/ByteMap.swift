/// GPT-2's reversible map from bytes to printable Unicode characters: printable Latin-1 bytes map
/// to themselves, the other 68 bytes to U+0100 onwards in order. Byte-level BPE vocabularies store
/// tokens in this alphabet (a space is `Ġ`, a newline `Ċ`).
enum ByteMap {
    /// Byte → character.
    static let encode: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0 ..< 256 {
            let printable = (33 ... 126).contains(b) || (161 ... 172).contains(b) || (174 ... 255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Character → byte, for the 256 characters above.
    static let decode: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, s) in encode.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()

    /// The raw bytes a vocabulary string stands for, or nil if it uses a character outside the map.
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = decode[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}
