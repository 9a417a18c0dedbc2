/// Llama (and Mistral, which GGUF stores the same way): pre-norm blocks, RoPE on adjacent pairs,
/// grouped-query attention, SwiGLU. Llama 3.1+ files add `rope_freqs.weight`, per-pair frequency
/// divisors that `ropeSpec` picks up.
///
///     x = embed(tokens)
///     for each block:
///         h = rmsNorm(x) · attn_norm
///         q, k, v = h·Wq, h·Wk, h·Wv;  q, k = rope(q, k)
///         x += attention(q, k, v) · Wo
///         h = rmsNorm(x) · ffn_norm
///         x += (silu(h·Wgate) ⊙ h·Wup) · Wdown
///     logits = (rmsNorm(x) · output_norm) · Woutput
enum Llama: ArchitectureDefinition {
    static let names = ["llama", "mistral"]

    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws {
        let rope = b.ropeSpec(style: .normal, factors: b.hasGlobal("rope_freqs.weight"))
        build(&b, qkvBias: false, rope: rope)
    }

    /// The Llama pass, with or without biases on Q, K and V (Qwen2 has them) and a RoPE.
    static func build(_ b: inout PlanBuilder, qkvBias: Bool, rope: RopeSpec) {
        b.embed()
        for l in 0 ..< b.config.blockCount {
            b.layer = l
            b.norm("attn_norm")
            b.linear("attn_q", .normed, .q, bias: qkvBias)
            b.linear("attn_k", .normed, .k, bias: qkvBias)
            b.linear("attn_v", .normed, .v, bias: qkvBias)
            b.rope(rope)
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
