"""llama.cpp's outputs on the tiny models (through llama-cpp-python's C API, float32 KV cache, no
flash attention): for each model and prompt, the logits of every position and 8 greedy ids.
Run by make.sh with the llama.cpp venv: python reference.py DIR > reference.json"""
import json, sys, os
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../../shared/tools"))
import numpy as np
import llama_ref

PROMPTS = [[7, 100, 33, 259, 12, 64, 200, 5], [1, 45, 46, 47, 48, 120, 121, 3, 9, 250, 251, 30, 31, 99, 98, 97, 96, 8, 70, 71],
           [150]]

out = {}
d = sys.argv[1]
for name in ["tiny-qwen2", "tiny-phi3", "tiny-llama3"]:
    llm = llama_ref.load(os.path.join(d, name + ".gguf"), n_ctx=128)
    cases = []
    for ids in PROMPTS:
        llm.reset(); llm.eval(ids)
        logits = [[round(float(x), 7) for x in llm.scores[i]] for i in range(len(ids))]
        greedy, margins = llama_ref.greedy(llm, ids, 8)
        cases.append({"prompt_ids": ids, "logits": logits, "greedy": greedy, "margins": margins})
    out[name] = cases
json.dump(out, sys.stdout, separators=(",", ":"))
