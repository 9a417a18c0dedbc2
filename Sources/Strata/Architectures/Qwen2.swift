/// Qwen2: the Llama block with biases on the Q, K and V projections and RoPE on halves (NeoX).
enum Qwen2: ArchitectureDefinition {
    static let names = ["qwen2"]

    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws {
        b.embed()
        for l in 0 ..< b.config.blockCount {
            b.layer = l
            b.norm("attn_norm")
            b.linear("attn_q", .normed, .q, bias: true)
            b.linear("attn_k", .normed, .k, bias: true)
            b.linear("attn_v", .normed, .v, bias: true)
            b.rope(b.ropeSpec(style: .neox))
            b.attention()
            b.linear("attn_output", .attention, .residual, accumulate: true)
            b.norm("ffn_norm")
            b.linear("ffn_gate", .normed, .gate)
            b.linear("ffn_up", .normed, .up)
            b.gated(.silu)
            b.linear("ffn_down", .gate, .residual, accumulate: true)
        }
        b.output()
    }
}
