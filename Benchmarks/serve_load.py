#!/usr/bin/env python3
"""Load test for an OpenAI-compatible server (strata serve, llama-server): N concurrent clients,
each sending streamed chat requests one after another; reports aggregate generated tokens/s and
time to first token (p50/p99).

Loopback only (the URL must be 127.0.0.1 or localhost), bounded in count (clients × requests) and
time (--deadline). Plain asyncio sockets, so the client costs little CPU next to the server.

  serve_load.py --url http://127.0.0.1:8080 --clients 1,8,32 --requests 2 --max-tokens 128 [--json]
"""
import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.parse

QUESTIONS = [
    "What is the capital of France?", "Name three primary colors.", "Write a haiku about the sea.",
    "Who wrote Romeo and Juliet?", "What is the boiling point of water?", "Give me a synonym for happy.",
    "What is the largest planet?", "Translate 'thank you' into Spanish.", "What is photosynthesis?",
    "How many legs does a spider have?", "Explain gravity to a child.", "Describe a sunset in two sentences.",
    "What is a prime number?", "Suggest a name for a cat.", "Why is the sea salty?", "What do bees make?",
]


async def one_request(host, port, body, timeout):
    """Sends one streamed chat request; returns (time to first content, completion tokens, seconds)."""
    start = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    payload = json.dumps(body).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer none\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (host.encode(), len(payload)) + payload)
    await writer.drain()
    first = None
    tokens = None
    chunks = 0
    events = b""

    def feed(data):
        nonlocal events, first, tokens, chunks
        events += data
        while b"\n\n" in events:
            event, events = events.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                line = line.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                obj = json.loads(line[6:])
                if obj.get("usage"):
                    tokens = obj["usage"]["completion_tokens"]
                for c in obj.get("choices") or []:
                    if (c.get("delta") or {}).get("content"):
                        chunks += 1
                        if first is None:
                            first = time.perf_counter() - start

    try:
        status = await asyncio.wait_for(reader.readline(), timeout)
        headers = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        if b" 200 " not in status:
            rest = await asyncio.wait_for(reader.read(4096), timeout)
            raise RuntimeError(f"HTTP status {status.decode().strip()}: {rest[:300]!r}")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await asyncio.wait_for(reader.readline(), timeout)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                feed(await asyncio.wait_for(reader.readexactly(size), timeout))
                await asyncio.wait_for(reader.readexactly(2), timeout)
        else:
            while True:
                data = await asyncio.wait_for(reader.read(65536), timeout)
                if not data:
                    break
                feed(data)
    finally:
        writer.close()
    return first, tokens if tokens is not None else chunks, time.perf_counter() - start


async def run_level(host, port, clients, requests, max_tokens, timeout, model):
    ttfts, tokens, errors = [], [], []

    async def client(i):
        for r in range(requests):
            q = QUESTIONS[(i * requests + r) % len(QUESTIONS)]
            body = {"model": model, "messages": [{"role": "user", "content": q}], "stream": True,
                    "stream_options": {"include_usage": True}, "max_tokens": max_tokens, "temperature": 0,
                    "ignore_eos": True}
            try:
                first, n, _ = await one_request(host, port, body, timeout)
                if first is not None:
                    ttfts.append(first)
                tokens.append(n)
            except Exception as e:  # noqa: BLE001 - reported, and the level counts as failed
                errors.append(str(e))

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - start
    ttfts.sort()

    def pct(p):
        return ttfts[min(len(ttfts) - 1, int(round(p / 100 * (len(ttfts) - 1))))] if ttfts else float("nan")

    return {"clients": clients, "requests": clients * requests, "errors": len(errors), "first_error": errors[0] if errors else None,
            "generated_tokens": sum(tokens), "seconds": wall, "tokens_per_second": sum(tokens) / wall,
            "ttft_p50_ms": pct(50) * 1000, "ttft_p99_ms": pct(99) * 1000,
            "ttft_mean_ms": (statistics.mean(ttfts) * 1000) if ttfts else float("nan")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=2, help="requests per client (sequential)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request")
    ap.add_argument("--deadline", type=float, default=1800, help="seconds for the whole run")
    ap.add_argument("--model", default="default")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("serve_load.py only targets loopback servers")
    levels = [int(x) for x in a.clients.split(",")]
    if any(c < 1 or c > 256 for c in levels) or not (1 <= a.requests <= 100):
        sys.exit("clients must be 1..256 and requests 1..100")

    async def all_levels():
        out = []
        for c in levels:
            out.append(await run_level(u.hostname, u.port or 80, c, a.requests, a.max_tokens, a.timeout, a.model))
        return out

    results = asyncio.run(asyncio.wait_for(all_levels(), a.deadline))
    for r in results:
        r["label"] = a.label
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{a.label:>12} clients {r['clients']:>3}: {r['generated_tokens']:>6} tokens in {r['seconds']:7.2f} s = "
                  f"{r['tokens_per_second']:7.1f} tok/s | TTFT p50 {r['ttft_p50_ms']:8.1f} ms p99 {r['ttft_p99_ms']:8.1f} ms"
                  f" | errors {r['errors']}" + (f" ({r['first_error']})" if r["errors"] else ""))
    if any(r["errors"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
