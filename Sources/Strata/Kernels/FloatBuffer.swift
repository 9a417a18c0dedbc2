/// A fixed-size float32 buffer allocated once (weights, activations, the KV cache).
/// Reference semantics: the executor hands out views without copying.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    let base: UnsafeMutablePointer<Float>

    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0)
        self.count = count
        base = .allocate(capacity: max(count, 1))
        if zeroed { base.initialize(repeating: 0, count: max(count, 1)) }
    }

    /// A buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { base.update(from: b, count: values.count) } }
    }

    deinit { base.deallocate() }

    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)"); return base[i] }
        set { precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)"); base[i] = newValue }
    }

    /// A copy of a range, for tests and inspection (allocates; not for the per-token path).
    public func array(_ range: Range<Int>? = nil) -> [Float] {
        let r = range ?? 0 ..< count
        precondition(r.lowerBound >= 0 && r.upperBound <= count)
        return Array(UnsafeBufferPointer(start: base + r.lowerBound, count: r.count))
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: base, count: count))
    }

    /// A strided matrix view starting at element `offset`.
    @inline(__always)
    func matrix(offset: Int = 0, rows: Int, cols: Int, stride: Int? = nil) -> Matrix {
        let ld = stride ?? cols
        precondition(offset >= 0 && rows >= 0 && cols >= 0 && ld >= cols, "bad matrix view")
        precondition(rows == 0 || offset + (rows - 1) * ld + cols <= count,
                     "matrix view [\(rows)×\(cols), stride \(ld)] at \(offset) exceeds buffer of \(count)")
        return Matrix(base: base + offset, rows: rows, cols: cols, stride: ld)
    }
}

/// A row-major view into a `FloatBuffer`: `rows × cols`, consecutive rows `stride` floats apart.
struct Matrix: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let rows: Int
    let cols: Int
    let stride: Int

    @inline(__always) func row(_ i: Int) -> UnsafeMutablePointer<Float> { base + i * stride }

    /// The view of rows `r`.
    @inline(__always) func rows(_ r: Range<Int>) -> Matrix {
        precondition(r.lowerBound >= 0 && r.upperBound <= rows, "rows \(r) outside 0..<\(rows)")
        return Matrix(base: row(r.lowerBound), rows: r.count, cols: cols, stride: stride)
    }
}
