import Foundation
import Synchronization

/// A loaded model: hyperparameters, weights (in the file's types, or float32) and the GGUF metadata
/// (for the tokenizer).
/// Immutable and shareable; each `InferenceContext` holds its own activations and KV cache.
public final class Model: Sendable {
    public let config: ModelConfig
    public let weights: ModelWeights
    /// The forward pass, as the architecture's file describes it.
    public let plan: ModelPlan
    public let gguf: GGUFFile
    public var path: String { gguf.path }
    private let packedCache = Mutex<[ActivationMode: PackedWeights]>([:])

    public init(path: String, weights mode: WeightsMode = .native) throws {
        let file = try GGUFFile(path: path)
        gguf = file
        config = try ModelConfig(gguf: file)
        plan = try config.architecture.plan(config, gguf: file)
        weights = try ModelWeights(gguf: file, plan: plan, mode: mode)
        // RoPE frequency divisors (Llama 3's `rope_freqs.weight`) must be finite and positive.
        for s in plan.steps {
            guard case let .rope(r) = s.action, let name = r.factorsTensor else { continue }
            let f = weights.vector(name)
            for i in 0 ..< f.count where !(f.base[i] > 0 && f.base[i].isFinite) {
                throw ModelError.invalidHyperparameter(key: name, value: "\(f.base[i]) at index \(i)", reason: "RoPE frequency factors must be finite and positive")
            }
        }
    }

    /// The weights repacked for the `simd` backend, made on first use (once per model, however
    /// many contexts ask at once) and kept as long as the model.
    /// (Integer panels for `.q24` and `.q8` activations, float-unpacked panels otherwise: a model
    /// normally makes one kind.)
    public func packedWeights(activations: ActivationMode = .f32) -> PackedWeights {
        packedCache.withLock { cached in
            if let made = cached[activations] { return made }
            let made = PackedWeights(weights, plan, activations: activations)
            cached[activations] = made
            return made
        }
    }

    /// Bytes `packedWeights(activations:)` takes (or would take), without making it.
    public func packedWeightBytes(activations: ActivationMode = .f32) -> Int {
        PackedWeights.bytes(for: weights, plan: plan, activations: activations)
    }

    /// Whether `packedWeights(activations:)` has been made.
    public func hasPackedWeights(activations: ActivationMode = .f32) -> Bool { packedCache.withLock { $0[activations] != nil } }

    /// Name of the default model file.
    public static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$STRATA_HOME/models/<default>` (STRATA_HOME defaults to `~/.cache/strata`).
    public static var defaultModelPath: String { ModelStore.directory + "/" + defaultModelFile }

    /// Resolves the model: the explicit one, else `$STRATA_MODEL`, else the default model. Each
    /// may be a path or a known model's name (`strata models`), which is fetched on first use
    /// (pip's progress on stderr).
    public static func resolvePath(_ explicit: String?) throws -> String {
        let env = ProcessInfo.processInfo.environment
        let given = explicit ?? env["STRATA_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        if let given {
            if KnownModel.named(given) != nil && !FileManager.default.fileExists(atPath: given) {
                return try ModelStore.resolve(given) { try? FileHandle.standardError.write(contentsOf: Data(("model: " + $0 + "\n").utf8)) }
            }
            guard FileManager.default.fileExists(atPath: given) else {
                let origin = explicit != nil ? "--model" : "$STRATA_MODEL"
                throw ModelError.modelNotFound("no model at '\(given)' (from \(origin)); pass a GGUF path or a name from `strata models`")
            }
            return given
        }
        let path = defaultModelPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError.modelNotFound("no model at '\(path)' (the default model); run `strata pull smollm2-135m` (or `make model`) to fetch it, or pass --model PATH|NAME")
        }
        return path
    }
}
