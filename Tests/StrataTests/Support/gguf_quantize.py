"""Quantizes pseudo-random rows with the `gguf` package (llama.cpp's Python reference) and prints,
per type, the blocks and the package's own dequantization of them, as JSON on stdout.
Used by QuantTests: Strata's dequantization and quantized kernels must give the same values."""
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

rows, cols = 3, 256
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
x = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 2.0, (rows, 1))).astype(np.float32)
x[0, :32] = 0.0          # an all-zero block
x[1, 32:64] = np.abs(x[1, 32:64])   # a block without negative values
out = {}
for t in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16):
    if t == T.F16:
        q = x.astype(np.float16).view(np.uint8)
        back = q.view(np.float16).astype(np.float32)
    else:
        q = quants.quantize(x, t)
        back = quants.dequantize(q, t)
    out[t.name] = {"rows": rows, "cols": cols, "bytes": q.tobytes().hex(),
                   "values": [float(v) for v in back.reshape(-1)]}
json.dump(out, sys.stdout)
