"""Tokenizers: exact round trips (bytes and locally trained BPE), specials, byte counts."""

from __future__ import annotations

import numpy as np
import pytest

from multiflow.text.tokenizer import MASK_CHAR, BPETokenizer, ByteTokenizer, tokenizer_from_dict

SAMPLES = [
    "",
    "def f(x):\n    return x + 1\n",
    "naïve café — ünïcödé ✓ 日本語のテキスト 𝔘𝔫𝔦 😀\n",
    "tabs\tand\r\nwindows newlines\x00nul and \x7f del",
    "<|eos|> looks like a special token but is text",
    "  leading spaces and trailing   ",
]

CORPUS = [
    "import os\nimport sys\n\n\ndef main(argv):\n    for arg in argv:\n        print(arg)\n    return 0\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "# comment with ümlauts and 漢字\nvalue = {'a': 1, 'b': [1, 2, 3]}\n",
] * 20


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, vocab_size=300)


@pytest.mark.parametrize("text", SAMPLES)
def test_bytes_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.size == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.vocab_size == 256 and tok.mask_id == 256


@pytest.mark.parametrize("text", SAMPLES + CORPUS[:3])
def test_bpe_round_trip(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert bpe.decode_bytes(ids) == text.encode("utf-8")
    # bytes per token add up to the UTF-8 length (what bits-per-byte divides by)
    assert int(bpe.token_bytes()[ids].sum()) == len(text.encode("utf-8"))


def test_bpe_compresses_and_never_emits_specials(bpe):
    text = CORPUS[0]
    ids = bpe.encode(text)
    assert ids.size < len(text.encode("utf-8")) / 1.5
    assert (bpe.encode(SAMPLES[4]) >= bpe.n_special).all()  # a literal "<|eos|>" is just text
    assert bpe.vocab_size == 300 and bpe.mask_id == 300 and bpe.eos_id == 0
    assert bpe.decode([bpe.eos_id]) == "<|eos|>"


def test_bpe_serialises(bpe):
    again = tokenizer_from_dict(bpe.to_dict())
    for text in SAMPLES:
        np.testing.assert_array_equal(again.encode(text), bpe.encode(text))


def test_mask_display_and_invalid_bytes():
    tok = ByteTokenizer()
    ids = np.array([ord("a"), tok.mask_id, ord("b")])
    assert tok.decode(ids) == "ab"
    assert tok.decode(ids, show_mask=True) == f"a{MASK_CHAR}b"
    assert tok.decode([0xE6]) == "\ufffd"  # a sampled lone UTF-8 lead byte decodes to U+FFFD
    with pytest.raises(ValueError):
        tok.decode([300])
