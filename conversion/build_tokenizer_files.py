"""Build the CLIP BPE tokenizer files shipped in ``src/eva02at_hf/tokenizer/``.

The vocabulary and merges are rebuilt from open_clip's bundled ``bpe_simple_vocab_16e6.txt.gz`` exactly as
``open_clip.tokenizer.SimpleTokenizer`` does (256 byte tokens, their ``</w>`` variants, 48894 merges,
then the two special tokens: 49408 ids), and saved as a transformers ``CLIPTokenizer``. Padding uses id 0
(``"!"``) like ``open_clip.tokenize``, which zero-fills after the end-of-text token; ``split_special_tokens``
keeps a literal ``"!"`` or ``"<|endoftext|>"`` in a caption tokenized as text, as open_clip does.

Usage: ``python conversion/build_tokenizer_files.py [--output-dir src/eva02at_hf/tokenizer]``
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTokenizer

CONTEXT_LENGTH = 77
NUM_MERGES = 49152 - 256 - 2


def load_vocab_and_merges(bpe_path: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary (token -> id) and merge pairs in open_clip's order, with HF special-token names."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tokenizer(bpe_path: str | Path) -> CLIPTokenizer:
    vocab, merges = load_vocab_and_merges(bpe_path)
    return CLIPTokenizer(
        vocab=vocab, merges=merges, pad_token="!", model_max_length=CONTEXT_LENGTH, split_special_tokens=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parents[1] / "src" / "eva02at_hf" / "tokenizer"
    parser.add_argument("--output-dir", type=Path, default=default_dir)
    parser.add_argument("--bpe-path", type=Path, default=Path(default_bpe()))
    args = parser.parse_args()
    tokenizer = build_tokenizer(args.bpe_path)
    for path in tokenizer.save_pretrained(args.output_dir):
        print(path)


if __name__ == "__main__":
    main()
