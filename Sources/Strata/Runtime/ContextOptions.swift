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

    public init(backend: Backend = .simd, threads: Int? = nil, contextLength: Int? = nil, slots: Int = 1,
                maxBatchTokens: Int = 512, maxLogitsRows: Int? = nil, activations: ActivationMode = .f32) {
        self.activations = activations
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

/// Memory the system could still give us (MemAvailable on Linux; physical memory elsewhere).
func availableMemory() -> Int {
    if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
    }
    return Int(ProcessInfo.processInfo.physicalMemory)
}
