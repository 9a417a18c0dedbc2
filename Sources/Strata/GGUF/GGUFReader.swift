/// A bounds-checked little-endian cursor over the mapped bytes. Every read checks the remaining
/// length first, so a truncated or corrupt file becomes an error, never an out-of-bounds read.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    var offset: Int = 0

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw GGUFError.truncated(what: what(), offset: offset) }
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: v)
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let start = offset
        let length = try read(UInt64.self, what() + " length")
        guard length <= UInt64(remaining) else {
            throw GGUFError.implausible(what: what() + " length", value: length, offset: start)
        }
        let n = Int(length)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n])
        guard let s = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw GGUFError.invalidUTF8(what: what(), offset: start)
        }
        offset += n
        return s
    }
}

/// Where one tensor's data lies in the file, and its shape. `dims[0]` is the innermost (contiguous)
/// dimension, as in ggml: a weight matrix with `dims = [in, out]` is stored as `out` rows of `in`.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType
    /// Offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { dims.reduce(1, *) }
}

/// A parsed GGUF file: metadata, tensor directory, and the mapped tensor data.
public final class GGUFFile: @unchecked Sendable {
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Keys in file order (for listing).
    public let keys: [String]
    public let tensors: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    let file: MappedFile

    public var path: String { file.path }

    /// Deepest array nesting accepted; real files nest at most once.
    static let maxArrayDepth = 4
    static let maxDims = 4

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        var c = ByteCursor(bytes: file.bytes)
        let magic = try c.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { throw GGUFError.badMagic(found: magic) }
        version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        let countOffset = c.offset
        let tensorCount = try c.read(UInt64.self, "tensor count")
        let kvCount = try c.read(UInt64.self, "metadata count")
        // A tensor info takes at least 8+4+8+4+8 bytes; a key-value at least 8+4+1.
        guard tensorCount <= UInt64(c.remaining / 32) else {
            throw GGUFError.implausible(what: "tensor count", value: tensorCount, offset: countOffset)
        }
        guard kvCount <= UInt64(c.remaining / 13) else {
            throw GGUFError.implausible(what: "metadata count", value: kvCount, offset: countOffset + 8)
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for i in 0 ..< Int(kvCount) {
            let keyOffset = c.offset
            let key = try c.readString("metadata key #\(i)")
            let typeOffset = c.offset
            let rawType = try c.read(UInt32.self, "type of '\(key)'")
            guard let type = GGUFValue.TypeCode(rawValue: rawType) else {
                throw GGUFError.unknownValueType(rawType, key: key, offset: typeOffset)
            }
            let value = try Self.readValue(&c, type: type, key: key, depth: 0)
            guard metadata[key] == nil else { throw GGUFError.duplicateKey(key, offset: keyOffset) }
            metadata[key] = value
            keys.append(key)
        }
        self.metadata = metadata
        self.keys = keys

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 65536, v & (v - 1) == 0 else {
                throw GGUFError.badAlignment(Int64(clamping: a.intValue ?? 0))
            }
            alignment = v
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        infos.reserveCapacity(Int(tensorCount))
        var raw: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
        for i in 0 ..< Int(tensorCount) {
            let name = try c.readString("tensor #\(i) name")
            let dimsOffset = c.offset
            let nDims = try c.read(UInt32.self, "dimension count of '\(name)'")
            guard nDims >= 1, nDims <= UInt32(Self.maxDims) else {
                throw GGUFError.implausible(what: "dimension count of '\(name)'", value: UInt64(nDims), offset: dimsOffset)
            }
            var dims: [UInt64] = []
            for d in 0 ..< Int(nDims) { dims.append(try c.read(UInt64.self, "dimension \(d) of '\(name)'")) }
            let type = try c.read(UInt32.self, "type of '\(name)'")
            let offset = try c.read(UInt64.self, "data offset of '\(name)'")
            raw.append((name, dims, type, offset))
        }
        let dataStart = (c.offset + alignment - 1) / alignment * alignment
        // A file with no tensors may end right after its header.
        guard dataStart <= file.bytes.count || tensorCount == 0 else {
            throw GGUFError.truncated(what: "padding before tensor data", offset: c.offset)
        }
        dataOffset = min(dataStart, file.bytes.count)
        let available = UInt64(file.bytes.count - dataOffset)

        for r in raw {
            guard let type = GGMLType(rawValue: r.type) else { throw GGUFError.unknownTensorType(r.type, tensor: r.name) }
            // Each dimension positive, the product bounded by the file (no overflow).
            var elements: UInt64 = 1
            for d in r.dims {
                guard d > 0, d <= UInt64(Int32.max) else { throw GGUFError.badDimensions(tensor: r.name, dims: r.dims) }
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                // Bounded so that the byte size below cannot overflow; the data check follows.
                guard !overflow, p <= 1 << 56 else {
                    throw GGUFError.badDimensions(tensor: r.name, dims: r.dims)
                }
                elements = p
            }
            let layout = type.blockLayout
            guard r.dims[0] % UInt64(layout.elements) == 0 else { throw GGUFError.badDimensions(tensor: r.name, dims: r.dims) }
            let size = elements / UInt64(layout.elements) * UInt64(layout.bytes)
            guard r.offset % UInt64(alignment) == 0 else {
                throw GGUFError.misalignedTensor(tensor: r.name, offset: r.offset, alignment: alignment)
            }
            guard r.offset <= available, size <= available - r.offset else {
                throw GGUFError.tensorOutOfBounds(tensor: r.name, offset: r.offset, size: size, available: available)
            }
            guard index[r.name] == nil else { throw GGUFError.duplicateTensor(r.name) }
            index[r.name] = infos.count
            infos.append(GGUFTensorInfo(name: r.name, dims: r.dims.map { Int($0) }, type: type,
                                        offset: Int(r.offset), byteCount: Int(size)))
        }
        tensors = infos
        tensorIndex = index
    }

    private static func readValue(_ c: inout ByteCursor, type: GGUFValue.TypeCode, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self, "value of '\(key)'"))
        case .int8: return .int8(try c.read(Int8.self, "value of '\(key)'"))
        case .uint16: return .uint16(try c.read(UInt16.self, "value of '\(key)'"))
        case .int16: return .int16(try c.read(Int16.self, "value of '\(key)'"))
        case .uint32: return .uint32(try c.read(UInt32.self, "value of '\(key)'"))
        case .int32: return .int32(try c.read(Int32.self, "value of '\(key)'"))
        case .uint64: return .uint64(try c.read(UInt64.self, "value of '\(key)'"))
        case .int64: return .int64(try c.read(Int64.self, "value of '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try c.read(UInt32.self, "value of '\(key)'")))
        case .float64: return .float64(Double(bitPattern: try c.read(UInt64.self, "value of '\(key)'")))
        case .bool:
            let offset = c.offset
            let b = try c.read(UInt8.self, "value of '\(key)'")
            guard b <= 1 else { throw GGUFError.implausible(what: "bool value of '\(key)'", value: UInt64(b), offset: offset) }
            return .bool(b == 1)
        case .string: return .string(try c.readString("string value of '\(key)'"))
        case .array:
            let typeOffset = c.offset
            let rawType = try c.read(UInt32.self, "array element type of '\(key)'")
            guard let elementType = GGUFValue.TypeCode(rawValue: rawType) else {
                throw GGUFError.unknownValueType(rawType, key: key, offset: typeOffset)
            }
            let countOffset = c.offset
            let count = try c.read(UInt64.self, "array length of '\(key)'")
            // Every element takes at least one byte (strings take 8), so the count is bounded by the file.
            let minSize = UInt64(elementType.fixedSize ?? (elementType == .string ? 8 : 12))
            guard count <= UInt64(c.remaining) / minSize else {
                throw GGUFError.implausible(what: "array length of '\(key)'", value: count, offset: countOffset)
            }
            if elementType == .array && depth >= maxArrayDepth {
                throw GGUFError.implausible(what: "array nesting depth of '\(key)'", value: UInt64(depth + 1), offset: typeOffset)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0 ..< Int(count) {
                values.append(try readValue(&c, type: elementType, key: key, depth: depth + 1))
            }
            return .array(values)
        }
    }

    // MARK: - Typed access

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor (bounds were checked at load).
    public func withTensorBytes<R>(_ info: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = dataOffset + info.offset
        return try body(UnsafeRawBufferPointer(rebasing: file.bytes[start ..< start + info.byteCount]))
    }

    /// The first byte of a tensor's data in the mapping (bounds were checked at load). Valid as long
    /// as this file is alive.
    func tensorBase(_ info: GGUFTensorInfo) -> UnsafeRawPointer {
        file.bytes.baseAddress! + dataOffset + info.offset
    }

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let i = v.intValue else { throw GGUFError.wrongType(key: key, expected: "an integer") }
        return i
    }

    public func double(_ key: String) throws -> Double {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let d = v.doubleValue else { throw GGUFError.wrongType(key: key, expected: "a number") }
        return d
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let s = v.stringValue else { throw GGUFError.wrongType(key: key, expected: "a string") }
        return s
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = metadata[key] else { throw GGUFError.missingKey(key) }
        guard let a = v.arrayValue else { throw GGUFError.wrongType(key: key, expected: "an array of strings") }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for e in a {
            guard let s = e.stringValue else { throw GGUFError.wrongType(key: key, expected: "an array of strings") }
            out.append(s)
        }
        return out
    }
}
