import Dispatch
import Foundation

/// The workloads `strata bench` measures, in the spirit of llama-bench.
public enum BenchTest: Sendable, Equatable, CustomStringConvertible {
    /// Prefill of N tokens in one pass (tokens/s).
    case prompt(Int)
    /// Generation of N tokens one at a time from an empty context (tokens/s).
    case generate(Int)
    /// B sequences with P-token prompts generating G tokens together: decode tokens/s (B·G over
    /// the decode time); the prefill and end-to-end rates are reported beside it.
    case batch(sequences: Int, prompt: Int, generate: Int)

    public var description: String {
        switch self {
        case let .prompt(n): "pp\(n)"
        case let .generate(n): "tg\(n)"
        case let .batch(b, p, g): "batch\(b) pp\(p)+tg\(g)"
        }
    }
}

/// One measured run of a workload.
public struct WorkloadResult: Sendable {
    /// The headline rate: pp and tg tokens/s, or decode tokens/s for batch tests.
    public var tokensPerSecond: Double
    public var seconds: Double
    /// For batch tests: prompt tokens/s and tokens/s counting prefill and decode together.
    public var prefillTokensPerSecond: Double?
    public var endToEndTokensPerSecond: Double?
}

public enum Workloads {
    /// Deterministic token ids spread over the vocabulary.
    static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var g = Xoshiro256(seed: seed)
        return (0 ..< n).map { _ in Int32(g.next() % UInt64(vocab)) }
    }

    /// The context a test needs.
    public static func contextOptions(for test: BenchTest, backend: Backend, threads: Int?, activations: ActivationMode = .f32,
                                      cacheType: KVCacheType = .f32) -> ContextOptions {
        switch test {
        case let .prompt(n):
            return ContextOptions(backend: backend, threads: threads, contextLength: n, maxBatchTokens: n, activations: activations, cacheType: cacheType)
        case let .generate(n):
            return ContextOptions(backend: backend, threads: threads, contextLength: n, maxBatchTokens: 1, activations: activations, cacheType: cacheType)
        case let .batch(b, p, g):
            return ContextOptions(backend: backend, threads: threads, contextLength: p + g, slots: b,
                                  maxBatchTokens: max(512, b), maxLogitsRows: b, activations: activations, cacheType: cacheType)
        }
    }

    /// Runs a test once on a context sized by `contextOptions(for:)`.
    public static func run(_ test: BenchTest, context ctx: InferenceContext, seed: UInt64 = 1) throws -> WorkloadResult {
        ctx.resetAll()
        let vocab = ctx.vocabSize
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        switch test {
        case let .prompt(n):
            let ids = tokens(n, vocab: vocab, seed: seed)
            let t0 = now()
            try ctx.prefill(ids)
            let s = Double(now() - t0) / 1e9
            return WorkloadResult(tokensPerSecond: Double(n) / s, seconds: s)
        case let .generate(n):
            var batch = Batch(capacity: 1)
            var token = tokens(1, vocab: vocab, seed: seed)[0]
            let t0 = now()
            for _ in 0 ..< n {
                batch.removeAll()
                batch.add(slot: 0, token: token)
                try ctx.evaluate(batch)
                token = ctx.withLogits(row: 0) { argmax($0) }
            }
            let s = Double(now() - t0) / 1e9
            return WorkloadResult(tokensPerSecond: Double(n) / s, seconds: s)
        case let .batch(b, p, g):
            let prompts = (0 ..< b).map { tokens(p, vocab: vocab, seed: seed &+ UInt64($0)) }
            var batch = Batch(capacity: ctx.maxBatchTokens)
            var next = [Int32](repeating: 0, count: b)
            // Prefill: all prompts, packed into steps of at most maxBatchTokens rows.
            let t0 = now()
            var seq = 0, offset = 0
            while seq < b {
                batch.removeAll()
                var rows: [(Int, Int)] = []
                while seq < b && batch.tokens.count < ctx.maxBatchTokens {
                    let take = min(p - offset, ctx.maxBatchTokens - batch.tokens.count)
                    let last = offset + take == p
                    let r = batch.add(slot: seq, tokens: prompts[seq][offset ..< offset + take], logits: last ? .last : .none)
                    if last { rows.append((seq, r)); seq += 1; offset = 0 } else { offset += take }
                }
                try ctx.evaluate(batch)
                for (s, r) in rows { next[s] = ctx.withLogits(row: r) { argmax($0) } }
            }
            let t1 = now()
            // Decode: one row per sequence per step, greedy.
            var rowOf = [Int](repeating: 0, count: b)
            for _ in 0 ..< g {
                batch.removeAll()
                for s in 0 ..< b { rowOf[s] = batch.add(slot: s, token: next[s]) }
                try ctx.evaluate(batch)
                for s in 0 ..< b { next[s] = ctx.withLogits(row: rowOf[s]) { argmax($0) } }
            }
            let t2 = now()
            let prefill = Double(t1 - t0) / 1e9, decode = Double(t2 - t1) / 1e9
            return WorkloadResult(tokensPerSecond: Double(b * g) / decode, seconds: prefill + decode,
                                  prefillTokensPerSecond: Double(b * p) / prefill,
                                  endToEndTokensPerSecond: Double(b * g) / (prefill + decode))
        }
    }

    @inline(__always)
    static func argmax(_ l: UnsafeBufferPointer<Float>) -> Int32 {
        Int32(SIMDMath.argmax(l.baseAddress!, l.count))
    }
}

/// Mean and sample standard deviation.
public func meanAndSD(_ x: [Double]) -> (mean: Double, sd: Double) {
    guard !x.isEmpty else { return (0, 0) }
    let m = x.reduce(0, +) / Double(x.count)
    guard x.count > 1 else { return (m, 0) }
    let v = x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count - 1)
    return (m, v.squareRoot())
}

/// The machine, for report headers.
import COpenBLAS

public enum MachineInfo {
    /// The process's peak resident set so far (VmHWM, Linux), in bytes.
    public static var peakRSS: Int? { procStatus("VmHWM:") }
    /// The process's resident set now (VmRSS, Linux), in bytes.
    public static var currentRSS: Int? { procStatus("VmRSS:") }

    /// Resets the peak resident set to the current one (`/proc/self/clear_refs`, Linux ≥ 4.0), so
    /// that `peakRSS` measures from here on.
    public static func resetPeakRSS() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    private static func procStatus(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    public static var cpuModel: String {
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("model name") {
                if let v = line.split(separator: ":", maxSplits: 1).last { return v.trimmingCharacters(in: .whitespaces) }
            }
        }
        return "unknown CPU"
    }
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }
    public static var memory: String { formatBytes(Int(ProcessInfo.processInfo.physicalMemory)) }
    public static var build: String {
        var debug = false
        assert({ debug = true; return true }())
        return debug ? "debug" : "release"
    }
    public static var openBLASCoreType: String { ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(auto)" }

    /// The kernel set OpenBLAS chose at run time (`openblas_get_corename`).
    public static var openBLASCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The CPU's feature flags (`/proc/cpuinfo`).
    public static var cpuFlags: Set<String> {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }

    /// OpenBLAS cores without AVX2 kernels: what an OpenBLAS too old for the CPU falls back to
    /// (Debian's 0.3.21 picks 'Prescott', generic SSE3, on recent Intel Xeons).
    static let genericOpenBLASCores: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai",
                                                    "coppermine", "northwood", "banias", "opteron", "opteron_sse3", "barcelona",
                                                    "bobcat", "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator",
                                                    "generic", "unknown"]

    /// A warning when OpenBLAS runs generic kernels on a CPU with AVX2 or AVX-512, naming the
    /// `OPENBLAS_CORETYPE` that would select better ones; nil otherwise.
    public static func openBLASWarning(core: String = openBLASCore, flags: Set<String> = cpuFlags) -> String? {
        guard genericOpenBLASCores.contains(core.lowercased()) else { return nil }
        let better = flags.contains("avx512f") && flags.contains("avx512bw") ? "SkylakeX" : flags.contains("avx2") ? "Haswell" : nil
        guard let better else { return nil }
        return "warning: OpenBLAS runs its generic '\(core)' kernels on this CPU (it has \(better == "SkylakeX" ? "AVX-512" : "AVX2")); "
            + "the blas backend would be several times faster with OPENBLAS_CORETYPE=\(better)"
    }
}
