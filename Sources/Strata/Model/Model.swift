import Foundation
import Synchronization

/// A loaded model: hyperparameters, weights (in the file's types, or float32) and the GGUF metadata
/// (for the tokenizer).
/// Immutable and shareable; each `InferenceContext` holds its own activations and KV cache.
public final class Model: Sendable {
    public let config: ModelConfig
    public let weights: ModelWeights
    public let gguf: GGUFFile
    public var path: String { gguf.path }
    private let packedCache = Mutex<[ActivationMode: PackedWeights]>([:])

    public init(path: String, weights mode: WeightsMode = .native) throws {
        let file = try GGUFFile(path: path)
        gguf = file
        config = try ModelConfig(gguf: file)
        weights = try ModelWeights(gguf: file, config: config, mode: mode)
    }

    /// The weights repacked for the `simd` backend, made on first use (once per model, however
    /// many contexts ask at once) and kept as long as the model.
    /// (Integer panels for `.q8` activations, float-unpacked panels otherwise: a model normally
    /// makes one of the two.)
    public func packedWeights(activations: ActivationMode = .f32) -> PackedWeights {
        packedCache.withLock { cached in
            if let made = cached[activations] { return made }
            let made = PackedWeights(weights, config, activations: activations)
            cached[activations] = made
            return made
        }
    }

    /// Bytes `packedWeights(activations:)` takes (or would take), without making it.
    public func packedWeightBytes(activations: ActivationMode = .f32) -> Int {
        PackedWeights.bytes(for: weights, activations: activations)
    }

    /// Whether `packedWeights(activations:)` has been made.
    public func hasPackedWeights(activations: ActivationMode = .f32) -> Bool { packedCache.withLock { $0[activations] != nil } }

    /// Name of the default model file.
    public static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `$STRATA_HOME/models/<default>` (STRATA_HOME defaults to `~/.cache/strata`).
    public static var defaultModelPath: String {
        let env = ProcessInfo.processInfo.environment
        let home = env["STRATA_HOME"] ?? (NSHomeDirectory() + "/.cache/strata")
        return home + "/models/" + defaultModelFile
    }

    /// Resolves the model path: the explicit one, else `$STRATA_MODEL`, else the default model.
    public static func resolvePath(_ explicit: String?) throws -> String {
        let env = ProcessInfo.processInfo.environment
        let path = explicit ?? env["STRATA_MODEL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultModelPath
        guard FileManager.default.fileExists(atPath: path) else {
            let origin = explicit != nil ? "--model" : (env["STRATA_MODEL"]?.isEmpty == false ? "$STRATA_MODEL" : "the default model path")
            throw ModelError.modelNotFound("no model at '\(path)' (from \(origin)); run `make model` to fetch the default model, or pass --model PATH")
        }
        return path
    }
}
