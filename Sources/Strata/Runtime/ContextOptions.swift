import Foundation

/// How an `InferenceContext` is sized and which kernels it runs.
public struct ContextOptions: Sendable {
    public var backend: Backend = .simd
    /// Kernel threads: Strata's pool for `simd`, OpenBLAS's for `blas` (nil: all cores).
    public var threads: Int? = nil
    /// Positions per sequence slot (nil: the model's context length).
    public var contextLength: Int? = nil
    /// Sequences held in the KV cache at once.
    public var slots: Int = 1
    /// Most tokens in one forward step (longer prompts are prefilled in chunks).
    public var maxBatchTokens: Int = 512
    /// Most logits rows one step may request (nil: `max(slots, 1)`; raise it to get logits for
    /// every prompt position).
    public var maxLogitsRows: Int? = nil
    /// What the `simd` backend multiplies quantized weights with (see `ActivationMode`).
    public var activations: ActivationMode = .f32
    /// What the KV cache stores: float32 or half precision (half the memory).
    public var cacheType: KVCacheType = .f32

    public init(backend: Backend = .simd, threads: Int? = nil, contextLength: Int? = nil, slots: Int = 1,
                maxBatchTokens: Int = 512, maxLogitsRows: Int? = nil, activations: ActivationMode = .f32,
                cacheType: KVCacheType = .f32) {
        self.activations = activations
        self.cacheType = cacheType
        self.backend = backend
        self.threads = threads
        self.contextLength = contextLength
        self.slots = slots
        self.maxBatchTokens = maxBatchTokens
        self.maxLogitsRows = maxLogitsRows
    }
}

/// Errors from running the model on given input.
public enum InferenceError: Error, Equatable, CustomStringConvertible {
    case invalidOption(String)
    case outOfMemory(needed: Int, available: Int, detail: String)
    case contextFull(slot: Int, length: Int, adding: Int, contextLength: Int)
    case promptTooLong(tokens: Int, contextLength: Int)
    case tokenOutOfRange(id: Int32, vocabSize: Int)
    case badSlot(Int, slots: Int)
    case slotRepeated(Int)
    case batchTooLarge(rows: Int, max: Int)
    case tooManyLogits(rows: Int, max: Int)
    case emptyPrompt

    public var description: String {
        switch self {
        case let .invalidOption(s): return s
        case let .outOfMemory(needed, available, detail):
            return "refusing to allocate \(formatBytes(needed)) (\(detail)): only \(formatBytes(available)) of memory is available; lower --ctx or --parallel"
        case let .contextFull(slot, length, adding, ctx):
            return "context full: slot \(slot) holds \(length) tokens, adding \(adding) exceeds the context of \(ctx)"
        case let .promptTooLong(tokens, ctx):
            return "prompt is \(tokens) tokens, longer than the context of \(ctx) (raise --ctx or shorten the prompt)"
        case let .tokenOutOfRange(id, vocab): return "token id \(id) is outside the vocabulary (0..<\(vocab))"
        case let .badSlot(s, n): return "sequence slot \(s) does not exist (0..<\(n))"
        case let .slotRepeated(s): return "sequence slot \(s) appears twice in one step"
        case let .batchTooLarge(rows, max): return "batch of \(rows) tokens exceeds the step size of \(max)"
        case let .tooManyLogits(rows, max): return "\(rows) logits rows requested, at most \(max) per step"
        case .emptyPrompt: return "the prompt is empty"
        }
    }
}

/// "1.5 GiB"-style formatting.
public func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// Memory the system could still give us: MemAvailable on Linux (physical memory elsewhere),
/// and no more than the room left under this process's cgroup limit when there is one (in a
/// container /proc/meminfo shows the host's memory, and the limit is what kills the job).
func availableMemory() -> Int {
    var available = Int(ProcessInfo.processInfo.physicalMemory)
    if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int(parts[1]) { available = kb * 1024 }
        }
    }
    if let cg = CgroupMemory.current() { available = min(available, max(0, cg.limit - cg.usage)) }
    return available
}

/// The memory limit and usage of this process's cgroup: v2 `memory.max`/`memory.current`, or v1
/// `memory.limit_in_bytes`/`memory.usage_in_bytes`. nil when there is no limit.
enum CgroupMemory {
    static func current() -> (limit: Int, usage: Int)? {
        let own = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        return read(root: "/sys/fs/cgroup", selfCgroup: own)
    }

    /// `selfCgroup` is the text of /proc/self/cgroup: `0::/path` (v2) or `N:memory:/path` (v1).
    static func read(root: String, selfCgroup: String) -> (limit: Int, usage: Int)? {
        func number(_ path: String) -> Int? {
            (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        var v2Path = "", v1Path = ""
        for line in selfCgroup.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            if f[0] == "0" && f[1].isEmpty { v2Path = String(f[2]) }
            if f[1].split(separator: ",").contains("memory") { v1Path = String(f[2]) }
        }
        // The process's own cgroup and every ancestor up to the root (a limit set on a parent — a
        // Slurm job, a systemd slice — binds too): the one with the least room left wins.
        func chain(_ base: String, _ path: String) -> [String] {
            var dirs: [String] = [], parts = path.split(separator: "/").map(String.init)
            while true {
                dirs.append(base + (parts.isEmpty ? "" : "/" + parts.joined(separator: "/")))
                if parts.isEmpty { break }
                parts.removeLast()
            }
            return dirs
        }
        var best: (limit: Int, usage: Int)?
        func consider(_ limit: Int, _ usage: Int) {
            if best == nil || limit - usage < best!.limit - best!.usage { best = (limit, usage) }
        }
        // v2 ("max" does not parse: no limit at that level).
        for dir in chain(root, v2Path) {
            if let limit = number(dir + "/memory.max") { consider(limit, number(dir + "/memory.current") ?? 0) }
        }
        // v1: an unlimited group reports a number near Int64.max.
        if best == nil {
            for dir in chain(root + "/memory", v1Path) {
                if let limit = number(dir + "/memory.limit_in_bytes"), limit < 1 << 60 {
                    consider(limit, number(dir + "/memory.usage_in_bytes") ?? 0)
                }
            }
        }
        return best
    }
}
