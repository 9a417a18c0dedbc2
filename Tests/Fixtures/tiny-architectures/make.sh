#!/bin/sh
# Rebuilds the tiny-architecture fixtures: the GGUFs (gguf package, in Strata's test venv) under
# $STRATA_HOME/tiny-architectures, their SHA256SUMS and llama.cpp's outputs on them
# (reference.json; needs ../shared/tools/build-llama-cpp.sh first). Not run by CI: SHA256SUMS and
# reference.json are committed beside this script; `make tiny-models` rewrites the GGUFs and checks them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
home=${STRATA_HOME:-$HOME/.cache/strata}
out="$home/tiny-architectures"
mkdir -p "$out"
"$home/venv/bin/python" "$here/make_models.py" "$out"
(cd "$out" && sha256sum tiny-qwen2.gguf tiny-phi3.gguf tiny-llama3.gguf) > "$here/SHA256SUMS"
PYTHONPATH="$home/llama.cpp/py" "$home/llama.cpp/venv/bin/python" "$here/reference.py" "$out" > "$here/reference.json"
cat "$here/SHA256SUMS"
