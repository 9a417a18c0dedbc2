#!/usr/bin/env python3
"""Sentence embeddings per second: `strata embed` against sentence-transformers (PyTorch float32 on
CPU) on the same all-MiniLM-L6-v2 folder, 1,000 sentences of 5-120 words, batches of 32, the same
thread count, in one sitting. Also checks that the two agree (cosine similarity per sentence).

  embed_bench.py --strata .build/release/strata --model ~/.cache/strata/models/all-minilm-l6-v2 \
      [--threads 2] [--sentences 1000] [--repeats 3]

Needs a Python with sentence-transformers and torch (Benchmarks/README: a venv of its own, never
part of `make test`). Timings exclude model loading on both sides: strata's come from
`strata embed --timings` (tokenizing and encoding), sentence-transformers' from timing `encode`.
"""
import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there would their we him been has when who will more no if out so said what up its about "
         "into than them can only other new some could time these two may then do first any my now such like our over "
         "man me even most made after also did many before must through back years where much your way well down "
         "should because each just those people how too little state good very make world still own see men work long "
         "get here between both life being under never day same another know while last might us great old year off "
         "come since against go came right used take three river mountain computer language model garden music "
         "history science ocean city market energy water light school family government story village machine").split()


def sentences(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(5, 120)
        words = [rng.choice(WORDS) for _ in range(k)]
        words[0] = words[0].capitalize()
        out.append(" ".join(words) + ".")
    return out


def run_strata(binary, model, texts, threads, repeats):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
        path = f.name
    env = dict(os.environ, STRATA_THREADS=str(threads))
    rates, vectors = [], None
    for _ in range(repeats + 1):  # the first run warms the page cache
        out = subprocess.run([binary, "embed", "--model", model, "--input", path, "--batch", "32", "--timings"],
                             capture_output=True, text=True, env=env, timeout=3600)
        if out.returncode != 0:
            sys.exit(out.stderr)
        m = re.search(r"in ([0-9.]+) s", out.stderr)
        rates.append(len(texts) / float(m.group(1)))
        vectors = [json.loads(line)["embedding"] for line in out.stdout.splitlines()]
    os.unlink(path)
    return rates[1:], vectors


def run_st(model, texts, threads, repeats):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    st = SentenceTransformer(model, device="cpu")
    st.encode(texts[:64], batch_size=32)  # warm-up
    rates, vectors = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        vectors = st.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
        rates.append(len(texts) / (time.perf_counter() - t0))
    return rates, vectors.tolist(), torch.__version__, torch.get_num_threads()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=".build/release/strata")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/strata/models/all-minilm-l6-v2"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    texts = sentences(a.sentences)
    s_rates, s_vecs = run_strata(a.strata, a.model, texts, a.threads, a.repeats)
    t_rates, t_vecs, torch_version, torch_threads = run_st(a.model, texts, a.threads, a.repeats)

    def cos(u, v):
        dot = sum(x * y for x, y in zip(u, v))
        nu = sum(x * x for x in u) ** 0.5
        nv = sum(y * y for y in v) ** 0.5
        return dot / (nu * nv)

    worst = min(cos(u, v) for u, v in zip(s_vecs, t_vecs))
    words = [len(t.split()) for t in texts]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {a.threads} (torch {torch_version}, {torch_threads} threads)")
    print(f"{len(texts)} sentences of {min(words)}-{max(words)} words (mean {statistics.mean(words):.1f}), batches of 32")
    print(f"strata embed:          {statistics.median(s_rates):8.1f} sentences/s (runs: {', '.join(f'{r:.1f}' for r in s_rates)})")
    print(f"sentence-transformers: {statistics.median(t_rates):8.1f} sentences/s (runs: {', '.join(f'{r:.1f}' for r in t_rates)})")
    print(f"ratio: {statistics.median(s_rates) / statistics.median(t_rates):.2f}x; lowest cosine similarity between the two: {worst:.7f}")


if __name__ == "__main__":
    main()
