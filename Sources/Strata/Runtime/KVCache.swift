/// The keys and values of every layer, slot and position, allocated once per context.
///
/// Layout: `[layer][slot][position][kvDim]`, keys and values in separate buffers, in the cache's
/// element type (float32 or half precision). The `simd` backend stores them the way its attention
/// kernel streams them (`transposed`, see `Attention.transposedRow`): keys in blocks of
/// `Attention.keyBlock` positions, each block transposed, values head by head; `positions` is then
/// rounded up to whole key blocks. A layer with a sliding window (`windows[layer]`) keeps every
/// position too and attention reads only the window's (a ring of `window` positions would save
/// memory; not done).
final class KVCache {
    let type: KVCacheType
    let layers: Int
    let slots: Int
    /// Positions held per slot (the context length, rounded up to whole key blocks when transposed).
    let positions: Int
    let kvDim: Int
    let headDim: Int
    let kvHeads: Int
    let transposed: Bool
    let keys: KVBuffer
    let values: KVBuffer
    /// Each layer's attention window in positions, the query's own included (nil: all).
    let windows: [Int?]

    /// Elements of one buffer.
    static func elements(layers: Int, slots: Int, positions: Int, kvDim: Int) -> Int { layers * slots * positions * kvDim }

    static func positions(contextLength: Int, transposed: Bool) -> Int {
        transposed ? (contextLength + Attention.keyBlock - 1) / Attention.keyBlock * Attention.keyBlock : contextLength
    }

    init(type: KVCacheType, layers: Int, slots: Int, contextLength: Int, headDim: Int, kvHeads: Int, transposed: Bool, windows: [Int?]) {
        precondition(windows.count == layers && windows.allSatisfy { ($0 ?? 1) >= 1 }, "one window of at least 1 per layer")
        self.windows = windows
        self.type = type
        self.layers = layers
        self.slots = slots
        self.transposed = transposed
        positions = Self.positions(contextLength: contextLength, transposed: transposed)
        self.headDim = headDim
        self.kvHeads = kvHeads
        kvDim = headDim * kvHeads
        let n = Self.elements(layers: layers, slots: slots, positions: positions, kvDim: kvDim)
        // Not zeroed: a position is written before any kernel reads it (the simd kernel's last key
        // block also scores positions past the visible ones, but those scores are never used), and
        // zeroing would touch every page up front: 6 GB for 16 slots of 8192 positions.
        keys = KVBuffer(type: type, count: n)
        values = KVBuffer(type: type, count: n)
    }

    /// The first position a query sees when `visible` positions (its own included) precede it.
    @inline(__always)
    func firstVisible(layer: Int, visible: Int) -> Int { windows[layer].map { max(0, visible - $0) } ?? 0 }

    /// Bytes held by keys and values.
    var bytes: Int { 2 * keys.count * type.bytesPerElement }

    /// Where a slot's positions of a layer start, in elements.
    @inline(__always)
    func offset(layer: Int, slot: Int) -> Int { ((layer * slots) + slot) * positions * kvDim }

    /// Writes the keys and values of `rows` rows (`kvDim` floats each, `k` and `v` row-major) at
    /// positions `start ..< start + rows` of a slot, converted to the cache's type.
    func store(layer: Int, slot: Int, start: Int, rows: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        switch type {
        case .f32: store(Float.self, layer: layer, slot: slot, start: start, rows: rows, k: k, v: v)
        case .f16: store(Float16.self, layer: layer, slot: slot, start: start, rows: rows, k: k, v: v)
        }
    }

    private func store<E: KVElement>(_: E.Type, layer: Int, slot: Int, start: Int, rows: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let kc = keys.elements(E.self), vc = values.elements(E.self)
        let hd = headDim, kb = Attention.keyBlock
        let base = offset(layer: layer, slot: slot)
        for i in 0 ..< rows {
            let pos = start + i
            let kSrc = k + i * kvDim, vSrc = v + i * kvDim
            if transposed {
                for g in 0 ..< kvHeads {
                    let kDst = kc + base + (g * positions + pos / kb * kb) * hd + pos % kb
                    let vDst = vc + base + (g * positions + pos) * hd
                    for d in 0 ..< hd { kDst[d * kb] = E(kSrc[g * hd + d]); vDst[d] = E(vSrc[g * hd + d]) }
                }
            } else {
                let kDst = kc + base + pos * kvDim, vDst = vc + base + pos * kvDim
                for d in 0 ..< kvDim { kDst[d] = E(kSrc[d]); vDst[d] = E(vSrc[d]) }
            }
        }
    }
}
