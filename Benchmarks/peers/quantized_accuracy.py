"""How far each quantized path moves the next-token logits from the float32 reference: Strata's
`--activations q8` and `q24` and llama.cpp's own Q4_1 path (8-bit activation blocks, the path
`../shared/fixtures/smollm2/q4_1_path.jsonl` comes from), run in one batch and token by token, and
Strata's exact path (`--activations f32`). The reference is llama.cpp on the F32 dequantization of the same
file. For each prompt (the fixture's, then any given on the command line) it prints, per path, the
largest |logit difference| over the reference's top 20, KL(reference || path) over the whole
vocabulary, and whether the top token agrees. Needs llama.cpp built by
`../shared/tools/build-llama-cpp.sh`; never part of `make test`:

    PYTHONPATH=~/.cache/strata/llama.cpp/py ~/.cache/strata/llama.cpp/venv/bin/python \\
        Benchmarks/peers/quantized_accuracy.py --f32 smollm2-f32.gguf ["another prompt" ...]

(the F32 file: `llama-quantize --allow-requantize SmolLM2-135M-Instruct.Q4_1.gguf smollm2-f32.gguf F32`).
"""
import argparse, json, os, subprocess, sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))
from llama_ref import next_logits  # noqa: E402  (llama.cpp's last-position logits, as the fixtures were made)


def load(path, batch):
    """As llama_ref.load (float32 KV cache, no flash attention, 2 threads), with `batch` tokens a step."""
    return Llama(model_path=path, n_ctx=2048, n_batch=batch, n_ubatch=batch, n_threads=2, logits_all=True,
                 verbose=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False)


def kl(ref, x):
    """KL(softmax(ref) || softmax(x)), in nats."""
    lp = ref - ref.max(); lp -= np.log(np.exp(lp).sum())
    lq = x - x.max(); lq -= np.log(np.exp(lq).sum())
    return float((np.exp(lp) * (lp - lq)).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/strata/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--f32", required=True, help="the F32 dequantization of --model (the float32 reference)")
    ap.add_argument("--strata", default=os.path.join(ROOT, ".build", "release", "strata"))
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "..", "shared", "fixtures", "smollm2", "q4_1_path.jsonl"))
    ap.add_argument("prompts", nargs="*")
    args = ap.parse_args()

    def strata(ids, *extra):
        out = subprocess.run([args.strata, "next", "--model", args.model, "--top", "0", "--json", "--ctx", "2048",
                              "--prompt-ids", ",".join(map(str, ids)), *extra], capture_output=True, text=True, check=True)
        top = json.loads(out.stdout.strip().splitlines()[-1])["top"]
        v = np.full(len(top), -np.inf)
        for t in top:
            v[t["id"]] = t["logit"]
        return v

    def tokenize(text):
        out = subprocess.run([args.strata, "tokenize", "--model", args.model, "--json", text],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["ids"]

    fixtures = [json.loads(l) for l in open(args.fixtures)]
    prompts = [("fixture: " + c["prompt"], c["prompt_ids"]) for c in fixtures]
    prompts += [(p, tokenize(p)) for p in args.prompts]
    ref, whole, single = load(args.f32, 512), load(args.model, 512), load(args.model, 1)
    paths = ["llama.cpp Q4_1, one batch", "llama.cpp Q4_1, token by token", "strata --activations q8", "strata --activations f32",
             "strata --activations q24"]
    totals, selfdiff = {p: [] for p in paths}, {}
    for source, ids in prompts:
        f = next_logits(ref, ids)
        top = np.argsort(-f)[:20]
        got = dict(zip(paths, [next_logits(whole, ids), next_logits(single, ids), strata(ids, "--activations", "q8"), strata(ids, "--activations", "f32"),
                                strata(ids, "--activations", "q24")]))
        row = {"prompt": source, "tokens": len(ids)}
        for p, v in got.items():
            r = (float(np.abs(v[top] - f[top]).max()), kl(f, v), int(np.argmax(v) == np.argmax(f)))
            totals[p].append(r)
            row[p] = {"max_dlogit_top20": round(r[0], 6), "kl": round(r[1], 6), "top1": r[2]}
        # The criterion for a quantized path: within 0.08 of llama.cpp's one-batch logits
        # (its top 20). llama.cpp token by token is the same path with other float rounding.
        q = np.argsort(-got[paths[0]])[:20]
        for p in paths[1:3]:
            d = float(np.abs(got[p][q] - got[paths[0]][q]).max())
            row[p]["vs_llama_batch"] = round(d, 4)
            selfdiff.setdefault(p, []).append(d)
        print(json.dumps(row), flush=True)
    print(json.dumps({p: {"mean_max_dlogit": round(float(np.mean([r[0] for r in v])), 6),
                          "worst_max_dlogit": round(float(np.max([r[0] for r in v])), 6),
                          "mean_kl": round(float(np.mean([r[1] for r in v])), 6),
                          "top1_agree": f"{sum(r[2] for r in v)}/{len(v)}",
                          **({"worst_vs_llama_batch": round(max(selfdiff[p]), 4)} if p in selfdiff else {})}
                      for p, v in totals.items()}))


if __name__ == "__main__":
    main()
