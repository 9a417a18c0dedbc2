"""The reference WordPiece ids for EncoderTests.wordPieceAgreesWithTokenizersOnEveryCodePoint.

Usage: wordpiece_reference.py TOKENIZER_JSON
Encodes, with the `tokenizers` package (the Rust tokenizer sentence-transformers runs), one short
text per Unicode scalar c: "A" + c + "b " + c + "Z" (c inside a word, c alone, next to letters
that are lower-cased), no padding, and prints one line per scalar: its hex value, then the ids.
"""
import sys

from tokenizers import Tokenizer


def main() -> None:
    tok = Tokenizer.from_file(sys.argv[1])
    tok.no_padding()
    tok.no_truncation()
    scalars = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    out = sys.stdout
    step = 65536
    for i in range(0, len(scalars), step):
        chunk = scalars[i:i + step]
        encodings = tok.encode_batch(["A" + chr(c) + "b " + chr(c) + "Z" for c in chunk], add_special_tokens=True)
        out.write("".join("%X %s\n" % (c, " ".join(map(str, e.ids))) for c, e in zip(chunk, encodings)))


if __name__ == "__main__":
    main()
