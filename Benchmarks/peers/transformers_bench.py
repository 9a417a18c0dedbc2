"""Hugging Face transformers (PyTorch, float32) on the same GGUF and shapes as `strata bench`.

pp N: one forward pass over N prompt tokens (tokens/s). tg N: greedy generation of N tokens after
a one-token prompt (tokens/s). batch B: B prompts of P tokens generating G tokens each with
`generate` (total generated tokens/s, and decode-only: the prefill time measured separately is
subtracted). Run with the venv that has torch + transformers + accelerate + gguf:

    python Benchmarks/peers/transformers_bench.py --model ~/.cache/strata/models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse, json, os, statistics, time

import torch
from transformers import AutoModelForCausalLM


def timed(fn, reps):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--batch", default="1,4,8,16,32")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d, f = os.path.split(os.path.abspath(os.path.expanduser(args.model)))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    results = []

    def record(test, times, tokens, **extra):
        tps = [tokens / t for t in times]
        results.append(dict(test=test, tokens_per_second=statistics.mean(tps),
                            sd=statistics.stdev(tps) if len(tps) > 1 else 0.0, samples=tps, **extra))
        print(json.dumps(results[-1]), flush=True)

    with torch.inference_mode():
        for n in (128, 512):
            ids = torch.randint(3, vocab, (1, n), generator=g)
            record(f"pp{n}", timed(lambda: model(ids, use_cache=False), args.r), n)
            record(f"pp{n} (last-token logits)", timed(lambda: model(ids, use_cache=False, logits_to_keep=1), args.r), n)
        one = torch.randint(3, vocab, (1, 1), generator=g)
        gen = lambda ids, n: model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                                            min_new_tokens=n, pad_token_id=0)
        record(f"tg{args.gen}", timed(lambda: gen(one, args.gen), args.r), args.gen)
        for b in [int(x) for x in args.batch.split(",") if x]:
            ids = torch.randint(3, vocab, (b, args.prompt), generator=g)
            prefill = statistics.mean(timed(lambda: model(ids, attention_mask=torch.ones_like(ids), logits_to_keep=1), args.r))
            times = timed(lambda: gen(ids, args.gen), args.r)
            record(f"batch{b}", times, b * args.gen, prompt=args.prompt, gen=args.gen,
                   decode_tokens_per_second=statistics.mean([b * args.gen / max(t - prefill, 1e-9) for t in times]))
    print(json.dumps(dict(peer="transformers", torch=torch.__version__, threads=args.threads,
                          transformers=__import__("transformers").__version__, results=results)))


if __name__ == "__main__":
    main()
