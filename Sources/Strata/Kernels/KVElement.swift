import CHalf

/// What the KV cache stores (`--cache-type`): float32, or half precision (IEEE binary16, as
/// llama.cpp's F16 cache), which halves the cache — the largest buffer at long contexts and many
/// slots. The attention kernels read half-precision keys and values directly, widening them in
/// registers (F16C `vcvtph2ps` on x86), and compute in float32 as for a float32 cache.
public enum KVCacheType: String, CaseIterable, Sendable, CustomStringConvertible {
    case f32
    case f16

    public var bytesPerElement: Int { self == .f32 ? 4 : 2 }
    public var description: String { rawValue }
}

/// An element type of the KV cache: stored from float32 (`init(_:)`, rounding to nearest for
/// half precision) and read back as float32 lanes.
protocol KVElement: Sendable {
    init(_ x: Float)
    var float: Float { get }
    /// Eight consecutive elements as floats.
    static func load8(_ p: UnsafePointer<Self>) -> SIMD8<Float>
    /// One `PVec` of consecutive elements as floats.
    static func loadVec(_ p: UnsafePointer<Self>) -> PVec
}

extension Float: KVElement {
    @inline(__always) var float: Float { self }
    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
    @inline(__always) static func loadVec(_ p: UnsafePointer<Float>) -> PVec { UnsafeRawPointer(p).loadUnaligned(as: PVec.self) }
}

extension Float16: KVElement {
    @inline(__always) var float: Float { strata_half_to_float(bitPattern) }
    @inline(__always) static func load8(_ p: UnsafePointer<Float16>) -> SIMD8<Float> {
        p.withMemoryRebound(to: UInt16.self, capacity: 8) { strata_load_half8($0) }
    }
    @inline(__always) static func loadVec(_ p: UnsafePointer<Float16>) -> PVec {
        #if STRATA_AVX512
        p.withMemoryRebound(to: UInt16.self, capacity: 16) { strata_load_half16($0) }
        #else
        p.withMemoryRebound(to: UInt16.self, capacity: 8) { strata_load_half8($0) }
        #endif
    }
}

/// The KV cache's storage: `count` elements of `type`, allocated once and not zeroed (pages cost
/// memory only once a position is written).
final class KVBuffer: @unchecked Sendable {
    let type: KVCacheType
    let count: Int
    let raw: UnsafeMutableRawPointer

    init(type: KVCacheType, count: Int) {
        precondition(count >= 0)
        self.type = type
        self.count = count
        raw = .allocate(byteCount: max(count, 1) * type.bytesPerElement, alignment: 64)
        switch type {
        case .f32: raw.bindMemory(to: Float.self, capacity: max(count, 1))
        case .f16: raw.bindMemory(to: Float16.self, capacity: max(count, 1))
        }
    }

    deinit { raw.deallocate() }

    /// The storage as elements of `E` (which must be the buffer's type).
    @inline(__always)
    func elements<E: KVElement>(_: E.Type) -> UnsafeMutablePointer<E> {
        precondition(MemoryLayout<E>.size == type.bytesPerElement, "KV cache of \(type) read as \(E.self)")
        return raw.assumingMemoryBound(to: E.self)
    }

    /// The float32 storage (an `f32` cache) as a matrix view.
    @inline(__always)
    func matrix(offset: Int, rows: Int, cols: Int, stride: Int) -> Matrix {
        precondition(type == .f32 && offset >= 0 && (rows == 0 || offset + (rows - 1) * stride + cols <= count), "bad KV cache view")
        return Matrix(base: raw.assumingMemoryBound(to: Float.self) + offset, rows: rows, cols: cols, stride: stride)
    }
}
