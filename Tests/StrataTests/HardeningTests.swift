import Foundation
import Testing
@testable import Strata

/// Inputs that used to crash (issue 14's audit): each now fails cleanly or works.
@Suite struct HardeningTests {
    /// `repeat_last_n = -1` ("all tokens") and absurd windows overflowed the history trim (a trap).
    @Test(arguments: [-1, Int.max, 1 << 40])
    func anyRepeatWindowSamples(window: Int) {
        var p = SamplingParameters()
        p.repeatPenalty = 1.3; p.temperature = 0
        // Token 7 appears once, 3,000 tokens back: a window covering the whole history (-1 = all,
        // or anything larger) still penalises it, so greedy picks 6 (7 / 1.3 < 6); a window of
        // 64 does not reach it and picks 7.
        func pick(_ window: Int) -> Int32 {
            p.repeatLastN = window
            let s = Sampler(parameters: p, vocabularySize: 8)
            s.accept(7)
            for _ in 0 ..< 3000 { s.accept(0) }
            let logits: [Float] = [0, 1, 2, 3, 4, 5, 6, 7]
            return logits.withUnsafeBufferPointer { s.sample($0) }
        }
        #expect(pick(window) == 6)
        #expect(pick(64) == 7)
    }

    /// A max_tokens far beyond any context is a limit, not an allocation: generation ends when
    /// the context is full.
    @Test func hugeMaxTokensEndsAtTheContext() throws {
        let model = ForwardTests.tiny
        let ctx = try InferenceContext(model: model, options: ContextOptions(backend: .naive, contextLength: 16))
        let g = Generator(model: model, tokenizer: try Tokenizer(gguf: model.gguf), context: ctx)
        var p = GenerationParameters()
        p.sampling = .greedy; p.maxTokens = 100_000_000_000_000; p.ignoreEOS = true
        let r = try g.generate(promptIds: [5, 6], parameters: p)
        #expect(r.finishReason == .length && r.ids.count == 15)   // 16 positions, 2 prompt tokens
    }

    /// A negative `general.alignment` was converted to an unsigned number (a trap).
    @Test(arguments: [-8, -1, 0, 3])
    func badAlignmentIsAnError(alignment: Int32) throws {
        var w = GGUFWriter()
        w.add("general.alignment", .int32(alignment))
        w.addTensor("t", dims: [4], floats: [1, 2, 3, 4])
        let path = try w.write(name: "align")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: GGUFError.self) { try GGUFFile(path: path) }
    }

    /// A token type beyond Int32 was narrowed with a trap; any value that is no token type is now
    /// an error naming the entry.
    @Test(arguments: [Int64(Int32.max) + 1, -5_000_000_000, 9])
    func badTokenTypeIsAnError(value: Int64) throws {
        var w = TinyModel().writer()
        let i = try #require(w.metadata.firstIndex { $0.0 == "tokenizer.ggml.token_type" })
        guard case let .array(types) = w.metadata[i].1 else { Issue.record("token_type is not an array"); return }
        // One element type for the whole array (GGUF arrays are homogeneous): int64.
        var wide = types.map { GGUFValue.int64(Int64($0.intValue!)) }
        wide[7] = .int64(value)
        w.metadata[i].1 = .array(wide)
        let path = try w.write(name: "tokentype")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let gguf = try GGUFFile(path: path)
        #expect(throws: TokenizerError.self) { try Tokenizer(gguf: gguf) }
    }

    /// An empty entry asked for its last row's logits and read the row before it (row −1 for the
    /// first entry), shifting every later entry's logits.
    @Test(arguments: Backend.allCases)
    func anEmptyEntryDoesNotShiftTheLogits(backend: Backend) throws {
        let model = ForwardTests.tiny
        let both = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 16, slots: 2))
        var batch = Batch()
        batch.add(slot: 0, tokens: [Int32](), logits: .last)
        let row = batch.add(slot: 1, tokens: [Int32]([5, 6, 7]), logits: .last)
        try both.evaluate(batch)
        #expect(both.logitsRowCount == 1 && row == 0)
        let alone = try InferenceContext(model: model, options: ContextOptions(backend: backend, contextLength: 16))
        try alone.prefill([Int32]([5, 6, 7]))
        #expect(both.logits(row: 0) == alone.logits(row: 0))
    }

    /// OpenBLAS's generic cores on a CPU with AVX2 or AVX-512 get a warning naming the
    /// OPENBLAS_CORETYPE that selects its real kernels; a matching core gets none.
    @Test func openBLASGenericCoreIsReported() {
        let avx512: Set<String> = ["avx2", "avx512f", "avx512bw"], avx2: Set<String> = ["avx2", "fma"]
        #expect(MachineInfo.openBLASWarning(core: "Prescott", flags: avx512)?.contains("OPENBLAS_CORETYPE=SkylakeX") == true)
        #expect(MachineInfo.openBLASWarning(core: "Prescott", flags: avx2)?.contains("OPENBLAS_CORETYPE=Haswell") == true)
        #expect(MachineInfo.openBLASWarning(core: "Haswell", flags: avx512) == nil)
        #expect(MachineInfo.openBLASWarning(core: "Prescott", flags: ["sse3"]) == nil)
        #expect(!MachineInfo.openBLASCore.isEmpty)
    }

    /// The memory check honours a cgroup limit (v2 and v1), which /proc/meminfo does not show.
    @Test func cgroupLimitsAreRead() throws {
        let fm = FileManager.default
        let root = TempFiles.directory + "/cg-\(UUID())"
        try fm.createDirectory(atPath: root + "/job", withIntermediateDirectories: true)
        try "1073741824\n".write(toFile: root + "/job/memory.max", atomically: true, encoding: .utf8)
        try "73741824\n".write(toFile: root + "/job/memory.current", atomically: true, encoding: .utf8)
        let v2 = CgroupMemory.read(root: root, selfCgroup: "0::/job\n")
        #expect(v2?.limit == 1_073_741_824 && v2?.usage == 73_741_824)
        try "max\n".write(toFile: root + "/job/memory.max", atomically: true, encoding: .utf8)
        #expect(CgroupMemory.read(root: root, selfCgroup: "0::/job\n") == nil)
        // A limit on an ancestor (here the root) binds although the job's own group says max.
        try "536870912\n".write(toFile: root + "/memory.max", atomically: true, encoding: .utf8)
        #expect(CgroupMemory.read(root: root, selfCgroup: "0::/job\n")?.limit == 536_870_912)
        try fm.removeItem(atPath: root + "/memory.max")
        try fm.createDirectory(atPath: root + "/memory/batch", withIntermediateDirectories: true)
        try "2147483648".write(toFile: root + "/memory/batch/memory.limit_in_bytes", atomically: true, encoding: .utf8)
        try "1000".write(toFile: root + "/memory/batch/memory.usage_in_bytes", atomically: true, encoding: .utf8)
        let v1 = CgroupMemory.read(root: root, selfCgroup: "4:memory:/batch\n0::/job\n")
        #expect(v1?.limit == 2_147_483_648 && v1?.usage == 1000)
        try "9223372036854771712".write(toFile: root + "/memory/batch/memory.limit_in_bytes", atomically: true, encoding: .utf8)
        #expect(CgroupMemory.read(root: root, selfCgroup: "4:memory:/batch\n") == nil)
        try? fm.removeItem(atPath: root)
    }
}
