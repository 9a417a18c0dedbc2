/// Phi-3: the Llama block with Q, K and V in one matrix (`attn_qkv`, split after the multiply),
/// gate and up in one (`ffn_up`, gate first), RoPE on halves (NeoX). Its chat format is
/// `<|user|>…<|end|><|assistant|>`. (llama.cpp ignores Phi-3's `sliding_window` metadata, and so
/// does Strata; the 128k models' long/short RoPE factors are not implemented and refuse to load.
/// llama.cpp also strips the whitespace after special tokens when the file is named Phi-3; Strata's
/// tokenizer does not, so a real Phi-3 chat prompt may get other ids.)
enum Phi3: ArchitectureDefinition {
    static let names = ["phi3"]

    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws {
        b.defaultChatTemplate = "phi3"
        b.embed()
        for l in 0 ..< b.config.blockCount {
            b.layer = l
            b.norm("attn_norm")
            if b.has("attn_qkv.weight") {
                b.fusedLinear("attn_qkv", .normed, [.q, .k, .v])
            } else {
                b.linear("attn_q", .normed, .q)
                b.linear("attn_k", .normed, .k)
                b.linear("attn_v", .normed, .v)
            }
            b.rope(b.ropeSpec(style: .neox))
            b.attention()
            b.linear("attn_output", .attention, .residual, accumulate: true)
            b.norm("ffn_norm")
            b.fusedLinear("ffn_up", .normed, [.gate, .up])
            b.gated(.silu)
            b.linear("ffn_down", .gate, .residual, accumulate: true)
        }
        b.output()
    }
}
