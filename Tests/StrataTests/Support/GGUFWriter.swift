import Foundation
@testable import Strata

/// Writes GGUF files in memory, for tests: any metadata, tensors as raw bytes of any type.
struct GGUFWriter {
    var version: UInt32 = 3
    var alignment = 32
    var metadata: [(String, GGUFValue)] = []
    var tensors: [(name: String, dims: [Int], type: UInt32, data: [UInt8])] = []

    mutating func add(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    mutating func addTensor(_ name: String, dims: [Int], floats: [Float]) {
        precondition(dims.reduce(1, *) == floats.count)
        var b: [UInt8] = []
        b.reserveCapacity(floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { b += $0 } }
        tensors.append((name, dims, GGMLType.f32.rawValue, b))
    }

    mutating func addTensor(_ name: String, dims: [Int], type: UInt32, bytes: [UInt8]) {
        tensors.append((name, dims, type, bytes))
    }

    func bytes() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out += s.utf8 }
        func code(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: 0; case .int8: 1; case .uint16: 2; case .int16: 3; case .uint32: 4; case .int32: 5
            case .float32: 6; case .bool: 7; case .string: 8; case .array: 9; case .uint64: 10; case .int64: 11; case .float64: 12
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .uint32(x): u32(x)
            case let .int32(x): u32(UInt32(bitPattern: x))
            case let .uint64(x): u64(x)
            case let .int64(x): u64(UInt64(bitPattern: x))
            case let .float32(x): u32(x.bitPattern)
            case let .float64(x): u64(x.bitPattern)
            case let .bool(x): out.append(x ? 1 : 0)
            case let .string(s): str(s)
            case let .array(a):
                u32(a.first.map(code) ?? 4)
                u64(UInt64(a.count))
                for e in a { value(e) }
            }
        }
        u32(0x4655_4747)
        u32(version)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (k, v) in metadata { str(k); u32(code(v)); value(v) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (i, t) in tensors.enumerated() {
            str(t.name)
            u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type)
            u64(UInt64(offsets[i]))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Writes to a fresh temporary file and returns its path.
    func write(name: String = "model") throws -> String {
        try TempFiles.write(bytes(), name: name + ".gguf")
    }
}

enum TempFiles {
    static let directory: String = {
        let d = NSTemporaryDirectory() + "strata-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func write(_ bytes: [UInt8], name: String) throws -> String {
        let path = directory + "/" + UUID().uuidString + "-" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Deterministic pseudo-random floats for test weights.
struct TestRNG {
    var g: Xoshiro256
    init(seed: UInt64) { g = Xoshiro256(seed: seed) }
    mutating func float(_ scale: Float = 1) -> Float { (g.nextUnitFloat() * 2 - 1) * scale }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0 ..< n).map { _ in float(scale) } }
}

/// A buffer holding `values` (for kernel tests).
func buffer(_ values: [Float]) -> FloatBuffer {
    let b = FloatBuffer(count: values.count)
    for (i, x) in values.enumerated() { b[i] = x }
    return b
}
