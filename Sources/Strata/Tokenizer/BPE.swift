/// Byte-level BPE over token ids: a word starts as one token per byte and adjacent pairs are merged
/// in order of merge rank (lowest first, leftmost on ties) until no ranked pair remains. A min-heap
/// keeps each merge O(log n), so long words cost no quadratic rescans.
struct BPE: Sendable {
    /// (left id, right id) packed → (rank, merged id).
    let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// Token id of each single byte (-1: the vocabulary has none; such bytes are dropped).
    let byteTokens: [Int32]

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    private struct Candidate: Comparable {
        let rank: Int32, left: Int32, right: Int32, leftId: Int32, rightId: Int32
        static func < (a: Candidate, b: Candidate) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.left < b.left }
    }

    /// Appends the ids of one pre-tokenized piece to `out`.
    func encode(_ bytes: some Collection<UInt8>, into out: inout [Int32]) {
        let n = bytes.count
        if n == 0 { return }
        if n == 1 {
            let id = byteTokens[Int(bytes.first!)]
            if id >= 0 { out.append(id) }
            return
        }
        var ids = bytes.map { byteTokens[Int($0)] }
        var next = (0 ..< n).map { Int32($0 + 1) }          // n means none
        var prev = (0 ..< n).map { Int32($0 - 1) }          // -1 means none
        var heap = MinHeap<Candidate>()
        func consider(_ l: Int32, _ r: Int32) {
            guard l >= 0, r < n, ids[Int(l)] >= 0, ids[Int(r)] >= 0 else { return }
            if let m = merges[Self.key(ids[Int(l)], ids[Int(r)])] {
                heap.push(Candidate(rank: m.rank, left: l, right: r, leftId: ids[Int(l)], rightId: ids[Int(r)]))
            }
        }
        for i in 0 ..< n - 1 { consider(Int32(i), Int32(i + 1)) }
        while let cand = heap.pop() {
            let l = Int(cand.left), r = Int(cand.right)
            // Stale if either side has changed since the candidate was pushed.
            guard ids[l] == cand.leftId, ids[r] == cand.rightId, next[l] == cand.right else { continue }
            ids[l] = merges[Self.key(cand.leftId, cand.rightId)]!.merged
            ids[r] = -1
            next[l] = next[r]
            if next[l] < n { prev[Int(next[l])] = Int32(l) }
            consider(prev[l], Int32(l))
            consider(Int32(l), next[l])
        }
        var i = 0
        while i < n {
            if ids[i] >= 0 { out.append(ids[i]) }
            i = Int(next[i])
        }
    }
}

/// A binary min-heap.
struct MinHeap<T: Comparable> {
    private var a: [T] = []

    mutating func push(_ x: T) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[i] < a[p] { a.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> T? {
        guard let top = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < a.count && a[l] < a[m] { m = l }
                if r < a.count && a[r] < a[m] { m = r }
                if m == i { break }
                a.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
