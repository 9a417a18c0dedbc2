/// Qwen2: the Llama block with biases on the Q, K and V projections and RoPE on halves (NeoX).
enum Qwen2: ArchitectureDefinition {
    static let names = ["qwen2"]

    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws {
        let rope = b.ropeSpec(style: .neox)
        Llama.build(&b, qkvBias: true, rope: rope)
    }
}
