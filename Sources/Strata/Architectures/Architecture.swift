/// One model family's forward pass. Each architecture is one file that turns the config (and any
/// metadata of its own) into a `ModelPlan` with a `PlanBuilder`; the executor runs any plan.
/// Adding an architecture: write that file, add it to `Architecture.definitions`, test it.
public protocol ArchitectureDefinition: Sendable {
    /// The `general.architecture` values it runs.
    static var names: [String] { get }
    /// Writes the forward pass into `b` (whose config and file it may read).
    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws
}

/// The architecture of a loaded model: its `general.architecture` name and definition.
public struct Architecture: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    let definition: any ArchitectureDefinition.Type

    /// The registry: one line per architecture file.
    static let definitions: [any ArchitectureDefinition.Type] = [Llama.self, Qwen2.self, Phi3.self, Gemma3.self]

    public static var supported: [String] { definitions.flatMap { $0.names }.sorted() }

    public static func named(_ name: String) throws -> Architecture {
        guard let d = definitions.first(where: { $0.names.contains(name) }) else {
            throw ModelError.unsupportedArchitecture(name, supported: supported)
        }
        return Architecture(name: name, definition: d)
    }

    public static func == (a: Architecture, b: Architecture) -> Bool { a.name == b.name }
    public var description: String { name }

    /// The plan for a model of this architecture.
    func plan(_ c: ModelConfig, gguf: GGUFFile) throws -> ModelPlan {
        // Every architecture's blocks start with `attn_norm`: a block count the file cannot hold
        // fails here, before a plan of millions of steps is written (a corrupt count did that).
        let last = "blk.\(c.blockCount - 1).attn_norm.weight"
        guard c.blockCount <= gguf.tensors.count / 4, gguf.tensorInfo(last) != nil else {
            throw ModelError.missingTensor("\(last) (block_count is \(c.blockCount), but the file holds only \(gguf.tensors.count) tensors)")
        }
        var b = PlanBuilder(c, gguf: gguf)
        try definition.build(&b, gguf: gguf)
        return b.plan
    }
}

extension PlanBuilder {
    /// The file's RoPE: the config's base (or `base`) and linear scaling (or `positionScale`), and
    /// with `factors` Llama 3's per-pair frequency divisors (`rope_freqs.weight`).
    func ropeSpec(style: RopeStyle, base: Double? = nil, positionScale: Double? = nil, factors: Bool = false) -> RopeSpec {
        RopeSpec(style: style, base: base ?? config.ropeBase, positionScale: positionScale ?? config.ropePositionScale,
                 factorsTensor: factors ? "rope_freqs.weight" : nil)
    }
}
