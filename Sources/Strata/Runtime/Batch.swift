/// Which rows of a sequence in a batch need next-token logits.
public enum LogitsRequest: Sendable {
    case none, last, all
}

/// The tokens of one forward step: one or more sequences, each appended to its own KV-cache slot.
/// Ragged, not padded. Reuse one value across steps (`removeAll`) to avoid allocation.
public struct Batch: Sendable {
    public struct Entry: Sendable {
        public let slot: Int
        public let rowStart: Int
        public let count: Int
        public let logits: LogitsRequest
        /// Index of this sequence's first logits row after evaluation (valid if `logits != .none`).
        public let logitsStart: Int
    }

    public private(set) var tokens: [Int32] = []
    public private(set) var entries: [Entry] = []
    public private(set) var logitsRows = 0

    public init(capacity: Int = 0) {
        tokens.reserveCapacity(capacity)
        entries.reserveCapacity(64)
    }

    public var isEmpty: Bool { tokens.isEmpty }

    /// Adds a sequence's next tokens. Returns the index of its first logits row.
    @discardableResult
    public mutating func add<C: Collection>(slot: Int, tokens new: C, logits: LogitsRequest = .last) -> Int
        where C.Element == Int32 {
        let e = Entry(slot: slot, rowStart: tokens.count, count: new.count, logits: logits, logitsStart: logitsRows)
        tokens.append(contentsOf: new)
        entries.append(e)
        switch logits {
        case .none: break
        case .last: logitsRows += new.isEmpty ? 0 : 1
        case .all: logitsRows += new.count
        }
        return e.logitsStart
    }

    /// Adds one token (the decode step) without creating a collection.
    @discardableResult
    public mutating func add(slot: Int, token: Int32, logits: Bool = true) -> Int {
        let e = Entry(slot: slot, rowStart: tokens.count, count: 1, logits: logits ? .last : .none, logitsStart: logitsRows)
        tokens.append(token)
        entries.append(e)
        if logits { logitsRows += 1 }
        return e.logitsStart
    }

    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        logitsRows = 0
    }
}
