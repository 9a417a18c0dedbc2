import Foundation

/// What is wrong with a safetensors file, and where.
public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    case truncated(path: String, need: Int, have: Int)
    case headerTooLarge(path: String, bytes: UInt64)
    case badHeader(path: String, reason: String)
    case badTensor(path: String, name: String, reason: String)
    case missingTensor(path: String, name: String)
    case wrongShape(path: String, name: String, expected: [Int], found: [Int])
    case wrongType(path: String, name: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .truncated(p, need, have): return "\(p): truncated: needs \(need) bytes, has \(have)"
        case let .headerTooLarge(p, n): return "\(p): header length \(n) is implausible (more than 100 MB or beyond the file)"
        case let .badHeader(p, r): return "\(p): bad header: \(r)"
        case let .badTensor(p, n, r): return "\(p): tensor '\(n)': \(r)"
        case let .missingTensor(p, n): return "\(p): missing tensor '\(n)'"
        case let .wrongShape(p, n, e, f): return "\(p): tensor '\(n)' has shape \(f), expected \(e)"
        case let .wrongType(p, n, e, f): return "\(p): tensor '\(n)' is \(f), expected \(e)"
        }
    }
}

/// A safetensors file (Hugging Face's format): an 8-byte little-endian header length, a JSON
/// header `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`, then the
/// tensors' bytes. Memory-mapped; every entry is checked before any byte is read — the dtype is
/// known, the shape's element count times the dtype's size equals its byte range, the range lies
/// inside the data, and ranges do not overlap.
public final class SafetensorsFile: @unchecked Sendable {
    public struct Tensor: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Byte range within the data section.
        public let begin: Int, end: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let tensors: [String: Tensor]
    public let metadata: [String: String]
    let file: MappedFile
    let dataOffset: Int

    static let dtypeSizes: [String: Int] = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                                            "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8]

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        self.path = path
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw SafetensorsError.truncated(path: path, need: 8, have: bytes.count) }
        let n = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard n <= 100_000_000, n <= UInt64(bytes.count - 8) else {
            if n <= 100_000_000 { throw SafetensorsError.truncated(path: path, need: 8 + Int(n), have: bytes.count) }
            throw SafetensorsError.headerTooLarge(path: path, bytes: n)
        }
        dataOffset = 8 + Int(n)
        let headerData = Data(bytes[8 ..< dataOffset])
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let header = json as? [String: Any] else {
            throw SafetensorsError.badHeader(path: path, reason: "not a JSON object")
        }
        let dataSize = bytes.count - dataOffset
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw SafetensorsError.badHeader(path: path, reason: "__metadata__ is not an object") }
                for (k, v) in m { metadata[k] = (v as? String) ?? "\(v)" }
                continue
            }
            func bad(_ r: String) -> SafetensorsError { .badTensor(path: path, name: name, reason: r) }
            guard let entry = value as? [String: Any] else { throw bad("entry is not an object") }
            guard let dtype = entry["dtype"] as? String else { throw bad("no dtype") }
            guard let size = Self.dtypeSizes[dtype] else { throw bad("unknown dtype '\(dtype)'") }
            guard let rawShape = entry["shape"] as? [Any], rawShape.count <= 8 else { throw bad("shape is not a list of at most 8 sizes") }
            var shape: [Int] = []
            var count = 1
            for d in rawShape {
                guard let num = d as? NSNumber, !(String(cString: num.objCType) == "c"), num.doubleValue == num.doubleValue.rounded(),
                      num.doubleValue >= 0, num.doubleValue < 1e15 else { throw bad("shape \(rawShape) has a size that is not a non-negative integer") }
                let v = num.intValue
                let (p, o) = count.multipliedReportingOverflow(by: v)
                guard !o, p <= dataSize else { throw bad("shape \(rawShape) holds more elements than the file") }
                count = p
                shape.append(v)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                  let b = (offs[0] as? NSNumber)?.doubleValue, let e = (offs[1] as? NSNumber)?.doubleValue,
                  b >= 0, e >= b, e <= Double(dataSize), b == b.rounded(), e == e.rounded() else {
                throw bad("data_offsets missing or outside the \(dataSize) data bytes")
            }
            let begin = Int(b), end = Int(e)
            guard end - begin == count * size else { throw bad("\(end - begin) bytes for \(count) \(dtype) values (\(count * size) bytes)") }
            tensors[name] = Tensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
        }
        // Ranges must not overlap (the format requires a dense, ordered layout; overlap means corruption).
        let sorted = tensors.values.filter { $0.end > $0.begin }.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw SafetensorsError.badTensor(path: path, name: b.name, reason: "its bytes overlap '\(a.name)'")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// A float32 tensor's values (F32, F16 or BF16 in the file), checked against `shape`.
    public func floats(_ name: String, shape: [Int]) throws -> FloatBuffer {
        guard let t = tensors[name] else { throw SafetensorsError.missingTensor(path: path, name: name) }
        guard t.shape == shape else { throw SafetensorsError.wrongShape(path: path, name: name, expected: shape, found: t.shape) }
        let out = FloatBuffer(count: t.elementCount, zeroed: false)
        let src = UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + t.begin) ..< (dataOffset + t.end)])
        switch t.dtype {
        case "F32":
            for i in 0 ..< t.elementCount { out.base[i] = Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
        case "F16":
            for i in 0 ..< t.elementCount { out.base[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)) }
        case "BF16":
            for i in 0 ..< t.elementCount { out.base[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
        default:
            throw SafetensorsError.wrongType(path: path, name: name, expected: "F32, F16 or BF16", found: t.dtype)
        }
        return out
    }
}
