import Foundation
import Testing
@testable import Strata

@Suite struct GGUFReaderTests {
    func smallFile() -> GGUFWriter {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.add("u8", .uint8(200)); w.add("i8", .int8(-5)); w.add("u16", .uint16(60000)); w.add("i16", .int16(-300))
        w.add("u32", .uint32(4_000_000_000)); w.add("i32", .int32(-7)); w.add("u64", .uint64(1 << 40)); w.add("i64", .int64(-(1 << 40)))
        w.add("f32", .float32(1.5)); w.add("f64", .float64(-2.25)); w.add("b", .bool(true)); w.add("s", .string("héllo"))
        w.add("arr", .array([.int32(1), .int32(2), .int32(3)]))
        w.add("nested", .array([.array([.string("a"), .string("b")]), .array([.string("c")])]))
        w.addTensor("t0", dims: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
        w.addTensor("t1", dims: [3], floats: [9, 10, 11])
        return w
    }

    @Test func readsEveryValueTypeAndTensor() throws {
        let g = try GGUFFile(path: smallFile().write())
        #expect(g.version == 3)
        #expect(g.metadata["u8"] == .uint8(200))
        #expect(g.metadata["i8"] == .int8(-5))
        #expect(g.metadata["u16"] == .uint16(60000))
        #expect(g.metadata["i16"] == .int16(-300))
        #expect(g.metadata["u32"] == .uint32(4_000_000_000))
        #expect(g.metadata["i32"] == .int32(-7))
        #expect(g.metadata["u64"] == .uint64(1 << 40))
        #expect(g.metadata["i64"] == .int64(-(1 << 40)))
        #expect(g.metadata["f32"] == .float32(1.5))
        #expect(g.metadata["f64"] == .float64(-2.25))
        #expect(g.metadata["b"] == .bool(true))
        #expect(try g.string("s") == "héllo")
        #expect(g.metadata["arr"] == .array([.int32(1), .int32(2), .int32(3)]))
        #expect(g.metadata["nested"] == .array([.array([.string("a"), .string("b")]), .array([.string("c")])]))
        #expect(g.keys.first == "general.architecture")
        let t0 = try #require(g.tensorInfo("t0"))
        #expect(t0.dims == [4, 2] && t0.type == .f32 && t0.byteCount == 32)
        let values = g.withTensorBytes(t0) { raw in (0 ..< 8).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        #expect(values == [1, 2, 3, 4, 5, 6, 7, 8])
        let t1 = try #require(g.tensorInfo("t1"))
        #expect(t1.offset % g.alignment == 0)
    }

    @Test func readsVersion2AndCustomAlignment() throws {
        var w = smallFile()
        w.version = 2
        w.alignment = 64
        w.add("general.alignment", .uint32(64))
        let g = try GGUFFile(path: w.write())
        #expect(g.version == 2 && g.alignment == 64 && g.dataOffset % 64 == 0)
        #expect(g.tensorInfo("t1")!.offset == 64)
    }

    func expectError(_ bytes: [UInt8], _ check: (GGUFError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try TempFiles.write(bytes, name: "bad.gguf")
        do {
            _ = try GGUFFile(path: path)
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch let e as GGUFError {
            #expect(check(e), "unexpected error: \(e)", sourceLocation: sourceLocation)
            #expect(!e.description.isEmpty)
        }
    }

    @Test func rejectsBadMagicAndVersion() throws {
        var b = smallFile().bytes()
        b[0] = 0x47; b[1] = 0x47; b[2] = 0x4D; b[3] = 0x4C
        try expectError(b) { if case .badMagic = $0 { true } else { false } }
        var w = smallFile(); w.version = 1
        try expectError(w.bytes()) { $0 == .unsupportedVersion(1) }
        w.version = 4
        try expectError(w.bytes()) { $0 == .unsupportedVersion(4) }
    }

    @Test func truncationAtEveryByteIsAnError() throws {
        let full = smallFile().bytes()
        // Every prefix shorter than the whole file must fail cleanly (the last tensor's data
        // ends before the final alignment padding, so stop there).
        let dataEnd = full.count - 32 + 12
        for n in 0 ..< dataEnd {
            let path = try TempFiles.write(Array(full[0 ..< n]), name: "trunc.gguf")
            #expect(throws: GGUFError.self, "prefix of \(n) bytes") { try GGUFFile(path: path) }
        }
    }

    @Test func corruptBytesNeverCrash() throws {
        let full = smallFile().bytes()
        var rng = Xoshiro256(seed: 7)
        for _ in 0 ..< 400 {
            var b = full
            let i = Int(rng.next() % UInt64(min(full.count, 600)))
            b[i] = UInt8(truncatingIfNeeded: rng.next())
            let path = try TempFiles.write(b, name: "corrupt.gguf")
            // Either it still parses or it is a typed error; anything else fails the test.
            do { _ = try GGUFFile(path: path) } catch is GGUFError {}
        }
    }

    @Test func rejectsAbsurdCountsAndLengths() throws {
        var b = smallFile().bytes()
        // tensor count at byte 8: set to 2^62
        b.replaceSubrange(8 ..< 16, with: withUnsafeBytes(of: UInt64(1 << 62).littleEndian, Array.init))
        try expectError(b) { if case .implausible(what: "tensor count", _, _) = $0 { true } else { false } }
        b = smallFile().bytes()
        b.replaceSubrange(16 ..< 24, with: withUnsafeBytes(of: UInt64(1 << 50).littleEndian, Array.init))
        try expectError(b) { if case .implausible(what: "metadata count", _, _) = $0 { true } else { false } }
        // First key's length at byte 24.
        b = smallFile().bytes()
        b.replaceSubrange(24 ..< 32, with: withUnsafeBytes(of: UInt64.max.littleEndian, Array.init))
        try expectError(b) { if case .implausible = $0 { true } else { false } }
        // A huge array length.
        var w = GGUFWriter()
        w.add("a", .array([.uint8(1)]))
        b = w.bytes()
        // magic4 ver4 counts16 keylen8 key1 type4 elemtype4 → count at 41
        b.replaceSubrange(41 ..< 49, with: withUnsafeBytes(of: UInt64(1 << 60).littleEndian, Array.init))
        try expectError(b) { if case .implausible(what: "array length of 'a'", _, _) = $0 { true } else { false } }
    }

    @Test func rejectsDuplicateKeysAndTensors() throws {
        var w = GGUFWriter()
        w.add("k", .uint32(1)); w.add("k", .uint32(2))
        try expectError(w.bytes()) { if case .duplicateKey("k", _) = $0 { true } else { false } }
        w = GGUFWriter()
        w.addTensor("t", dims: [1], floats: [1]); w.addTensor("t", dims: [1], floats: [2])
        try expectError(w.bytes()) { $0 == .duplicateTensor("t") }
    }

    @Test func rejectsUnknownTypes() throws {
        var w = GGUFWriter()
        w.addTensor("t", dims: [32], type: 99, bytes: [UInt8](repeating: 0, count: 64))
        try expectError(w.bytes()) { $0 == .unknownTensorType(99, tensor: "t") }
        var b = GGUFWriter().bytes()
        var v = GGUFWriter(); v.add("x", .uint8(0)); b = v.bytes()
        // type code of 'x' sits after magic, version, counts, key length and key: 4+4+16+8+1
        b.replaceSubrange(33 ..< 37, with: withUnsafeBytes(of: UInt32(77).littleEndian, Array.init))
        try expectError(b) { if case .unknownValueType(77, key: "x", _) = $0 { true } else { false } }
    }

    @Test func rejectsTensorsPastTheEndOrMisaligned() throws {
        var w = GGUFWriter()
        w.addTensor("t", dims: [1000], type: 0, bytes: [UInt8](repeating: 0, count: 64))
        try expectError(w.bytes()) { if case .tensorOutOfBounds(tensor: "t", _, _, _) = $0 { true } else { false } }
        w = GGUFWriter()
        w.addTensor("t", dims: [0], floats: [])
        try expectError(w.bytes()) { if case .badDimensions = $0 { true } else { false } }
        w = GGUFWriter()
        w.addTensor("q", dims: [33], type: GGMLType.q8_0.rawValue, bytes: [UInt8](repeating: 0, count: 68))
        try expectError(w.bytes()) { if case .badDimensions = $0 { true } else { false } }
    }

    @Test func rejectsInvalidUTF8() throws {
        var w = GGUFWriter()
        w.add("s", .string("ab"))
        var b = w.bytes()
        // string value bytes are the last two before padding: find "ab"
        let i = b.firstIndex(of: 0x61)!   // key "s" comes first, value 'a' later
        let j = b[(i + 1)...].firstIndex(of: 0x61) ?? i
        b[j] = 0xFF
        try expectError(b) { if case .invalidUTF8 = $0 { true } else { false } }
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/x.gguf") }
        #expect(throws: GGUFError.self) { try GGUFFile(path: NSTemporaryDirectory()) }
    }
}
