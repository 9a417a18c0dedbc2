/// Finds stop strings in streamed text across token boundaries. Text that might still become a
/// stop string is held back until it is decided; the stop string itself is never emitted.
struct StopMatcher {
    let stops: [[UInt8]]
    private var held: [UInt8] = []

    init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) } }

    /// Feeds newly decoded text; returns what can be emitted now and whether a stop string ended it.
    mutating func feed(_ text: String) -> (emit: String, stopped: Bool) {
        if stops.isEmpty { return (text, false) }
        held.append(contentsOf: text.utf8)
        // The earliest complete occurrence of any stop string.
        var first: Int?
        for s in stops {
            if let i = Self.find(s, in: held), first == nil || i < first! { first = i }
        }
        if let i = first {
            let out = String(decoding: held[..<i], as: UTF8.self)
            held.removeAll()
            return (out, true)
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        var keep = 0
        for s in stops {
            var n = min(s.count - 1, held.count)
            while n > keep {
                if held[(held.count - n)...].elementsEqual(s[..<n]) { keep = n; break }
                n -= 1
            }
        }
        let out = String(decoding: held[..<(held.count - keep)], as: UTF8.self)
        held.removeFirst(held.count - keep)
        return (out, false)
    }

    /// Text still held back at the end of generation.
    mutating func flush() -> String {
        defer { held.removeAll() }
        return String(decoding: held, as: UTF8.self)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count, let f = needle.first else { return nil }
        var i = 0
        while i + needle.count <= hay.count {
            if hay[i] == f && hay[i ..< i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
