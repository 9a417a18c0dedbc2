"""Writes tiny random-weight GGUFs of the architectures Strata runs without real weights here:
Qwen2 (Q/K/V biases), Phi-3 (fused attn_qkv and gate-up ffn_up) and Llama 3 (rope_freqs.weight),
with the `gguf` package. Deterministic: numpy's legacy RandomState (whose stream numpy keeps fixed across versions),
seeded per model; SHA256SUMS holds the bytes llama.cpp's reference.json was made from, and
`make tiny-models` (run by `make test`) checks them. Models are written, never committed:
    python make_models.py OUTDIR"""
import sys
import numpy as np
import gguf

EMBD, HEADS, KV_HEADS, FF, LAYERS, CTX = 64, 4, 2, 96, 2, 128
HEAD = EMBD // HEADS
KV = KV_HEADS * HEAD


def vocabulary():
    """SentencePiece-style: <unk> <s> </s>, the 256 byte tokens, a few pieces (260 + 8)."""
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        tokens.append("<0x%02X>" % b); scores.append(0.0); types.append(6)
    for i, p in enumerate(["\u2581the", "\u2581a", "in", "er", "on", "\u2581t", "he", "at"]):
        tokens.append(p); scores.append(-float(i)); types.append(1)
    return tokens, scores, types


def write(path, arch, seed, tied=False, biases=False, fused=False, rope_freqs=False, neox_note=""):
    rng = np.random.RandomState(seed)
    tokens, scores, types = vocabulary()
    vocab = len(tokens)

    def mat(out_dim, in_dim, scale):   # numpy [out, in] is ggml [in, out]
        return (rng.standard_normal((out_dim, in_dim)) * scale).astype(np.float32)

    def ones(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny random model")   # not "phi3": llama.cpp then expects Phi-3's special tokens
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(EMBD)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0 if arch != "llama" else 500000.0)
    w.add_rope_dimension_count(HEAD)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)

    w.add_tensor("token_embd.weight", mat(vocab, EMBD, 1.0))
    w.add_tensor("output_norm.weight", ones(EMBD))
    if not tied:
        w.add_tensor("output.weight", mat(vocab, EMBD, 0.3))
    if rope_freqs:
        # Llama 3.1's shape of divisors: 1 for high frequencies, up to the scaling factor for low.
        w.add_tensor("rope_freqs.weight", np.array([1 + (i % 4) * 2.5 for i in range(HEAD // 2)], dtype=np.float32))
    for l in range(LAYERS):
        b = "blk.%d." % l
        w.add_tensor(b + "attn_norm.weight", ones(EMBD))
        if fused:
            w.add_tensor(b + "attn_qkv.weight", mat(EMBD + 2 * KV, EMBD, 0.3))
        else:
            w.add_tensor(b + "attn_q.weight", mat(EMBD, EMBD, 0.3))
            w.add_tensor(b + "attn_k.weight", mat(KV, EMBD, 0.3))
            w.add_tensor(b + "attn_v.weight", mat(KV, EMBD, 0.3))
        if biases:
            w.add_tensor(b + "attn_q.bias", (0.1 * rng.standard_normal(EMBD)).astype(np.float32))
            w.add_tensor(b + "attn_k.bias", (0.1 * rng.standard_normal(KV)).astype(np.float32))
            w.add_tensor(b + "attn_v.bias", (0.1 * rng.standard_normal(KV)).astype(np.float32))
        w.add_tensor(b + "attn_output.weight", mat(EMBD, EMBD, 0.2))
        w.add_tensor(b + "ffn_norm.weight", ones(EMBD))
        if fused:
            w.add_tensor(b + "ffn_up.weight", mat(2 * FF, EMBD, 0.3))   # gate rows first, then up
        else:
            w.add_tensor(b + "ffn_gate.weight", mat(FF, EMBD, 0.3))
            w.add_tensor(b + "ffn_up.weight", mat(FF, EMBD, 0.3))
        w.add_tensor(b + "ffn_down.weight", mat(EMBD, FF, 0.2))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    out = sys.argv[1]
    write(out + "/tiny-qwen2.gguf", "qwen2", seed=2, tied=True, biases=True)
    write(out + "/tiny-phi3.gguf", "phi3", seed=3, fused=True)
    write(out + "/tiny-llama3.gguf", "llama", seed=4, rope_freqs=True)
