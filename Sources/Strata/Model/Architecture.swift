/// What differs between the Llama-family architectures Strata runs. One entry per
/// `general.architecture` value; the forward pass reads only these flags.
public struct Architecture: Sendable, Equatable {
    public let name: String
    public let ropeStyle: RopeStyle
    /// Q, K and V projections carry biases (`blk.N.attn_q.bias`, …).
    public let qkvBias: Bool

    /// The registry, keyed by `general.architecture`.
    public static let registry: [String: Architecture] = [
        "llama": Architecture(name: "llama", ropeStyle: .normal, qkvBias: false),
        "mistral": Architecture(name: "mistral", ropeStyle: .normal, qkvBias: false),
        "qwen2": Architecture(name: "qwen2", ropeStyle: .neox, qkvBias: true),
    ]

    public static func named(_ name: String) throws -> Architecture {
        guard let a = registry[name] else {
            throw ModelError.unsupportedArchitecture(name, supported: registry.keys.sorted())
        }
        return a
    }
}
