/// Gemma 3 (text): embeddings scaled by √width; RMS norms before and after each branch (the file
/// stores their weights as 1 + w already); Q and K normed per head; RoPE on halves, base 10,000
/// on the sliding-window (local) layers and the file's base on the global ones, every sixth layer
/// global (or as `attention.sliding_window_pattern` says); multi-query attention with head size
/// `attention.key_length`, scaled by 1/√key_length (1/√(width/heads) for the 62-layer 27B, as
/// llama.cpp); GeGLU (tanh GELU) FFN; linear RoPE scaling on the global layers only;
/// LM head tied to the embeddings. The file has no chat template: Gemma's turn format is used.
///
///     x = embed(tokens) · √width
///     for each block i (global when (i + 1) % 6 == 0, else a window of `sliding_window` keys):
///         h = rmsNorm(x) · attn_norm
///         q, k, v = h·Wq, h·Wk, h·Wv
///         q, k = rmsNorm_per_head(q) · attn_q_norm, rmsNorm_per_head(k) · attn_k_norm
///         q, k = rope(q, k; base local or global)
///         x += rmsNorm(attention(q, k, v; window) · Wo) · post_attention_norm
///         h = rmsNorm(x) · ffn_norm
///         x += rmsNorm((gelu_tanh(h·Wgate) ⊙ h·Wup) · Wdown) · post_ffw_norm
///     logits = (rmsNorm(x) · output_norm) · Wembedᵀ
enum Gemma3: ArchitectureDefinition {
    static let names = ["gemma3"]
    /// Every `globalEvery`-th layer attends to the whole context.
    static let globalEvery = 6

    static func build(_ b: inout PlanBuilder, gguf: GGUFFile) throws {
        let c = b.config
        let a = c.architecture.name + "."
        var window: Int?
        if gguf.metadata[a + "attention.sliding_window"] != nil {
            let w = try gguf.int(a + "attention.sliding_window")
            guard w >= 0, w <= 1 << 24 else {
                throw ModelError.invalidHyperparameter(key: a + "attention.sliding_window", value: String(w), reason: "must be between 0 and 16777216")
            }
            window = w > 0 ? w : nil
        }
        let localBase = gguf.metadata[a + "rope.freq_base_swa"] == nil ? 10_000 : try gguf.double(a + "rope.freq_base_swa")
        guard localBase > 1, localBase.isFinite else {
            throw ModelError.invalidHyperparameter(key: a + "rope.freq_base_swa", value: String(localBase), reason: "must be a finite number above 1")
        }
        // Which layers slide: every `globalEvery`-th is global, or the file's pattern (a period, or
        // one flag per layer), as llama.cpp reads it.
        var slides = (0 ..< c.blockCount).map { ($0 + 1) % globalEvery != 0 }
        let patternKey = a + "attention.sliding_window_pattern"
        if let v = gguf.metadata[patternKey] {
            if let flags = v.arrayValue {
                guard flags.count == c.blockCount, flags.allSatisfy({ $0.boolValue != nil }) else {
                    throw ModelError.invalidHyperparameter(key: patternKey, value: "\(flags.count) values",
                                                           reason: "must be one flag per layer (\(c.blockCount)) or a period")
                }
                slides = flags.map { $0.boolValue! }
            } else {
                let n = try gguf.int(patternKey)
                guard n >= 0, n <= 1 << 24 else {
                    throw ModelError.invalidHyperparameter(key: patternKey, value: String(n), reason: "must be between 0 and 16777216")
                }
                slides = (0 ..< c.blockCount).map { n == 0 || $0 % n < n - 1 }
            }
        }
        let scale = c.blockCount == 62 ? 1 / (Float(c.embeddingLength) / Float(c.headCount)).squareRoot() : 1 / Float(c.headDim).squareRoot()
        if let softcap = gguf.metadata[a + "final_logit_softcapping"]?.doubleValue, softcap != 0 {
            throw ModelError.invalidHyperparameter(key: a + "final_logit_softcapping", value: String(softcap), reason: "logit soft-capping is not implemented")
        }
        b.defaultChatTemplate = "gemma"
        b.embed(scale: Float(c.embeddingLength).squareRoot())
        b.use(.branch, width: c.embeddingLength)
        for l in 0 ..< c.blockCount {
            b.layer = l
            let local = window != nil && slides[l]
            b.norm("attn_norm")
            b.linear("attn_q", .normed, .q)
            b.linear("attn_k", .normed, .k)
            b.linear("attn_v", .normed, .v)
            b.headNorm("attn_q_norm", .q)
            b.headNorm("attn_k_norm", .k)
            b.rope(local ? b.ropeSpec(style: .neox, base: localBase, positionScale: 1) : b.ropeSpec(style: .neox))
            b.attention(window: local ? window : nil, scale: scale)
            b.linear("attn_output", .attention, .branch)
            b.normAdd("post_attention_norm")
            b.norm("ffn_norm")
            b.linear("ffn_gate", .normed, .gate)
            b.linear("ffn_up", .normed, .up)
            b.gated(.geluTanh)
            b.linear("ffn_down", .gate, .branch)
            b.normAdd("post_ffw_norm")
        }
        b.output()
    }
}
