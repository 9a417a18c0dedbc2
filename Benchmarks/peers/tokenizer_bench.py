"""Hugging Face `tokenizers` (through transformers' GGUF loader) encoding the same text as Strata,
one thread. Writes the corpus (Python's standard library source, >= 1.2 MB) if missing and the ids.

    python Benchmarks/peers/tokenizer_bench.py --model M --corpus /tmp/corpus.txt --ids-out /tmp/hf_ids.txt
"""
import argparse, os, statistics, subprocess, sys, time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer


def corpus(path):
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "make_corpus.py"), path], check=True)
    return open(path, encoding="utf-8").read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--ids-out")
    ap.add_argument("-r", type=int, default=5)
    a = ap.parse_args()
    text = corpus(a.corpus)
    d, f = os.path.split(os.path.abspath(os.path.expanduser(a.model)))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    enc = tok.backend_tokenizer
    # transformers' GGUF converter gives a plain ByteLevel pre-tokenizer; SmolLM2's own tokenizer
    # (and llama.cpp's 'smollm') first splits every digit. Restore it so both encode the same ids.
    enc.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    ids = enc.encode(text, add_special_tokens=False).ids
    times = []
    for _ in range(a.r):
        t0 = time.perf_counter()
        enc.encode(text, add_special_tokens=False)
        times.append(time.perf_counter() - t0)
    m = statistics.mean(times)
    mb = len(text.encode()) / 1e6
    print(f"tokenizers: {mb:.2f} MB, {len(ids)} tokens: {m*1e3:.1f} ms -> {mb/m:.2f} MB/s, {len(ids)/m/1e6:.2f} M tokens/s (one thread)")
    if a.ids_out:
        open(a.ids_out, "w").write("\n".join(map(str, ids)))


if __name__ == "__main__":
    main()
