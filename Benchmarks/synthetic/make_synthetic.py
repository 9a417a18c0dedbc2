"""Writes a Llama-shaped model of about 1.1 B parameters (22 layers, width 2048, 32 query / 4 KV
heads, FFN 5632, vocabulary 32000, untied output) with random weights, in Q4_0 and in Q8_0, with
the `gguf` package: `make synthetic-model`. For memory and speed at scale only (its text is
noise); never committed.
    python make_synthetic.py OUT_DIR [TYPE ...]        (types: Q4_0 Q8_0; default both)"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter, quants

LAYERS, EMBD, HEADS, KV_HEADS, FF, VOCAB, CTX = 22, 2048, 32, 4, 5632, 32000, 2048
HEAD_DIM = EMBD // HEADS


def byte_chars():
    """GPT-2's byte-to-character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write(path, qtype, seed=1):
    rng = np.random.default_rng(seed)
    w = GGUFWriter(path + ".partial", "llama")
    w.add_name("synthetic-1.1b")
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(EMBD)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + byte_chars()
    types = [3] * len(specials) + [1] * 256
    tokens.append("\u0120t")   # one merge (llama.cpp refuses a BPE vocabulary without merges)
    types.append(1)
    tokens += [f"<unused_{i}>" for i in range(VOCAB - len(tokens))]
    types += [5] * (VOCAB - len(types))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)

    def matrix(name, rows, cols, std):
        x = (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float32)
        q = quants.quantize(x, qtype)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    def ones(name, n):
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    matrix("token_embd.weight", VOCAB, EMBD, 0.02)
    ones("output_norm.weight", EMBD)
    matrix("output.weight", VOCAB, EMBD, 0.02)
    for i in range(LAYERS):
        b = f"blk.{i}."
        ones(b + "attn_norm.weight", EMBD)
        matrix(b + "attn_q.weight", EMBD, EMBD, 0.02)
        matrix(b + "attn_k.weight", KV_HEADS * HEAD_DIM, EMBD, 0.02)
        matrix(b + "attn_v.weight", KV_HEADS * HEAD_DIM, EMBD, 0.02)
        matrix(b + "attn_output.weight", EMBD, EMBD, 0.02)
        ones(b + "ffn_norm.weight", EMBD)
        matrix(b + "ffn_gate.weight", FF, EMBD, 0.02)
        matrix(b + "ffn_up.weight", FF, EMBD, 0.02)
        matrix(b + "ffn_down.weight", EMBD, FF, 0.02)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".partial", path)
    print(f"wrote {path} ({os.path.getsize(path) / 2**20:.0f} MiB)")


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or ["Q4_0", "Q8_0"]:
        path = os.path.join(out, f"synthetic-1.1b-{name.lower()}.gguf")
        if not os.path.exists(path):
            write(path, T[name])
        else:
            print(f"{path} exists")
