"""Writes the fuzzers' seed inputs (Tests/Fuzz/seeds/<harness>/), small and reproducible:
    $STRATA_HOME/venv/bin/python Tests/Fuzz/make_seeds.py
The GGUF seed is a one-layer Llama-shaped model with random weights (width 32, vocabulary 24) in
several tensor types with a byte-level BPE tokenizer and a ChatML template: a few KB, so the fuzzer
mutates every field of a real header rather than megabytes of weights."""
import json, os, numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as Q
from gguf.quants import quantize

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds')
def out(harness, name, data):
    d = os.path.join(here, harness); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f: f.write(data if isinstance(data, bytes) else data.encode())

rng = np.random.default_rng(7)
E, F, V = 32, 32, 24
path = '/tmp/strata-seed.gguf'
w = GGUFWriter(path, 'llama')
w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(E); w.add_feed_forward_length(F)
w.add_head_count(2); w.add_head_count_kv(1); w.add_rope_freq_base(10000.0); w.add_layer_norm_rms_eps(1e-5)
w.add_tokenizer_model('gpt2'); w.add_tokenizer_pre('smollm')
toks = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', 'a', 'b', 'c', 'Ġ', 'Ġa', 'ab', 'Ġab', 'h', 'i', 'hi', 'Ġhi',
        '\n', 'Ċ', '!', '.', 'x', 'y', 'z', 'xy', 'Ġx', 'Ġxy']
w.add_token_list(toks); w.add_token_types([3, 3, 3] + [1] * (V - 3))
w.add_token_merges(['Ġ a', 'a b', 'Ġa b', 'h i', 'Ġ hi', 'x y', 'Ġ x', 'Ġx y'])
w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_add_bos_token(False)
w.add_chat_template("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}")
def t(name, shape, qt):
    x = rng.standard_normal(shape).astype(np.float32) * 0.1
    if qt in (Q.F32,): w.add_tensor(name, x)
    elif qt == Q.F16: w.add_tensor(name, x.astype(np.float16))
    else: w.add_tensor(name, quantize(x, qt), raw_dtype=qt)
t('token_embd.weight', (V, E), Q.Q8_0)
t('output_norm.weight', (E,), Q.F32)
t('blk.0.attn_norm.weight', (E,), Q.F32)
t('blk.0.ffn_norm.weight', (E,), Q.F32)
t('blk.0.attn_q.weight', (E, E), Q.F16)
t('blk.0.attn_k.weight', (16, E), Q.Q4_0)
t('blk.0.attn_v.weight', (16, E), Q.Q4_1)
t('blk.0.attn_output.weight', (E, E), Q.Q5_0)
t('blk.0.ffn_gate.weight', (F, E), Q.Q8_0)
t('blk.0.ffn_up.weight', (F, E), Q.F32)
t('blk.0.ffn_down.weight', (E, F), Q.Q5_1)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
out('GGUF', 'tiny-llama', open(path, 'rb').read())

for i, s in enumerate(["Hello, world!", "The capital of France is", "naïve café 日本語 🙂\t\r\n", "<|im_start|>user\nhi<|im_end|>",
                       "    indented\n\n\ncode()  ", "'s 've 're 123456 ---"]):
    out('Tokenizer', f'text{i}', s)
out('Tokenizer', 'ids', bytes([1, 0, 200, 1, 255, 255, 255, 127, 0, 0, 0, 128, 42, 0, 7, 0]))

for i, name in enumerate(['chatml', 'phi3', 'llama3', 'gemma', 'mistral', 'zephyr']):
    out('ChatTemplate', name, bytes([i]) + b'system\0Be brief.\0user\0Hello <|im_end|> there\0assistant\0Hi.\0user\0More?')
out('ChatTemplate', 'detect', b'\xff{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}\0user\0x')

lines = [{"id": 1, "prompt": "Once upon a time", "max_tokens": 8},
         {"id": "b", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n"]},
         {"id": 7.0, "prompt": "x", "repeat_last_n": -1, "max_tokens": 100000000000000},
         {"id": None, "prompt": "y"}, {"id": [1], "prompt": "z"}, {"prompt": "no id"}]
out('BatchInput', 'mixed.jsonl', '\n'.join(json.dumps(l) for l in lines) + '\n{not json\n\n')
out('BatchInput', 'dup.jsonl', '{"id": 1, "prompt": "a"}\n{"id": 1.0, "prompt": "b"}\n')

# A small safetensors file: three float tensors (F32, F16, BF16 stored as raw u16) and an I64 one.
import struct
def st_file(tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw; off += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + blobs
a = rng.standard_normal((4, 8)).astype(np.float32)
out('Safetensors', 'small.safetensors', st_file([
    ("layer.weight", "F32", [4, 8], a.tobytes()),
    ("layer.bias", "F16", [8], a[0].astype(np.float16).tobytes()),
    ("emb.weight", "BF16", [2, 4], (a[:2, :4].view(np.uint32) >> 16).astype(np.uint16).tobytes()),
    ("position_ids", "I64", [1, 4], np.arange(4, dtype=np.int64).reshape(1, 4).tobytes()),
]))
