"""Writes the tokenizer benchmark text: Python's standard-library source (mixed English and code),
the first files in name order until at least 1.2 MB. Usage: python3 Benchmarks/make_corpus.py OUT"""
import glob, os, sys, sysconfig

out, size = sys.argv[1], 1_200_000
parts, total = [], 0
for f in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
    s = open(f, encoding="utf-8", errors="replace").read()
    parts.append(s)
    total += len(s.encode())
    if total >= size:
        break
open(out, "w", encoding="utf-8").write("".join(parts))
print(f"{out}: {total} bytes from {len(parts)} files")
