"""Tokenizers for the text/code modality; none of them downloads anything.

Two vocabularies, both with exact decoding (``decode(encode(x)) == x`` for any str):
  * :class:`ByteTokenizer` (default): the 256 byte values of the UTF-8 encoding,
    ``vocab_size == 256``; the flow's MASK is index 256.
  * :class:`BPETokenizer`: byte-level BPE trained locally on a corpus with the
    ``tokenizers`` package. Ids ``0..n_special-1`` are our special tokens (``<|eos|>``
    separates files when packing), the learned BPE tokens follow. Specials never arise
    from text: a literal ``"<|eos|>"`` in a file is encoded as ordinary bytes.

The flow vocabulary is always ``vocab_size`` data tokens plus MASK at index ``vocab_size``
(``mask_id``); the tokenizer itself never emits MASK. ``token_bytes()`` gives the number
of UTF-8 bytes each token stands for, which turns nats per token into bits per byte
(a separator counts as one byte, like the NUL byte that separates files in the byte
vocabulary).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

from multiflow.errors import ConfigError

MASK_CHAR = "\u2591"
"""How a MASK (undecided) position is shown when decoding for display: a light shade."""


class TextTokenizer(Protocol):
    """What the rest of multiflow.text needs from a tokenizer."""

    vocab_size: int  # S data tokens; MASK is index S
    eos_id: int  # separator between packed files

    @property
    def mask_id(self) -> int: ...

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray, *, show_mask: bool = False) -> str: ...

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes: ...

    def token_bytes(self) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


def _as_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of token ids, got shape {arr.shape}")
    return arr


class ByteTokenizer:
    """UTF-8 bytes as tokens: id == byte value. Files are separated by the NUL byte (id 0)."""

    vocab_size: int = 256
    eos_id: int = 0

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> int64 ids [L], one per UTF-8 byte."""
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        arr = _as_ids(ids)
        if arr.size and (arr.min() < 0 or arr.max() > self.mask_id):
            raise ValueError(f"byte ids must lie in 0..{self.mask_id}, got {arr.min()}..{arr.max()}")
        return arr[arr < self.vocab_size].astype(np.uint8).tobytes()

    def decode(self, ids: Sequence[int] | np.ndarray, *, show_mask: bool = False) -> str:
        """Ids -> text. Invalid UTF-8 (possible in samples) becomes U+FFFD.

        MASK positions are dropped, or shown as :data:`MASK_CHAR` when ``show_mask``.
        """
        arr = _as_ids(ids)
        if not show_mask:
            return self.decode_bytes(arr).decode("utf-8", errors="replace")
        pieces, start = [], 0
        for pos in np.flatnonzero(arr == self.mask_id).tolist() + [arr.size]:
            pieces.append(self.decode_bytes(arr[start:pos]).decode("utf-8", errors="replace"))
            if pos < arr.size:
                pieces.append(MASK_CHAR)
            start = pos + 1
        return "".join(pieces)

    def token_bytes(self) -> np.ndarray:
        """[vocab_size] int64: every byte token stands for one byte."""
        return np.ones(self.vocab_size, dtype=np.int64)

    def to_dict(self) -> dict:
        return {"kind": "bytes"}


@lru_cache(maxsize=1)
def _byte_unicode_tables() -> tuple[dict[int, str], dict[str, int]]:
    """The reversible byte <-> printable-character map used by byte-level BPE.

    Printable Latin-1 bytes map to themselves; the other bytes are moved, in order, to
    code points 256, 257, ... so that every byte has a visible, unique character.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    to_char: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in to_char:
            to_char[b] = chr(256 + extra)
            extra += 1
    return to_char, {c: b for b, c in to_char.items()}


class BPETokenizer(ByteTokenizer):
    """Byte-level BPE (``tokenizers``), with our special tokens in front of the learned ones."""

    def __init__(self, hf_json: str, specials: Sequence[str] = ("<|eos|>",)) -> None:
        from tokenizers import Tokenizer  # optional dependency, imported on use

        if not specials:
            raise ConfigError("BPETokenizer needs at least one special token (the file separator)")
        self._json = hf_json
        self._hf = Tokenizer.from_str(hf_json)
        self.specials = tuple(specials)
        self.n_special = len(self.specials)
        self.eos_id = 0
        self.vocab_size = self.n_special + self._hf.get_vocab_size()
        _, from_char = _byte_unicode_tables()
        table: list[bytes] = [s.encode("utf-8") for s in self.specials]
        inv = {i: tok for tok, i in self._hf.get_vocab().items()}
        for i in range(self._hf.get_vocab_size()):
            table.append(bytes(from_char[c] for c in inv[i]))
        self._table = table

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096,
              specials: Sequence[str] = ("<|eos|>",), min_frequency: int = 2) -> BPETokenizer:
        """Learn a byte-level BPE with ``vocab_size`` ids in total (specials included)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        n_learned = vocab_size - len(specials)
        if n_learned < 256:
            raise ConfigError(f"BPE vocab_size must be at least 256 + {len(specials)} specials, got {vocab_size}")
        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=n_learned, min_frequency=min_frequency,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      special_tokens=[], show_progress=False)
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf.to_str(), specials)

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        if not text:
            return np.zeros(0, dtype=np.int64)
        ids = self._hf.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int64) + self.n_special

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Encode many texts at once (parallel inside ``tokenizers``)."""
        out = self._hf.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) + self.n_special for e in out]

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        arr = _as_ids(ids)
        if arr.size and (arr.min() < 0 or arr.max() > self.mask_id):
            raise ValueError(f"BPE ids must lie in 0..{self.mask_id}, got {arr.min()}..{arr.max()}")
        return b"".join(self._table[i] for i in arr.tolist() if i < self.vocab_size)

    def token_bytes(self) -> np.ndarray:
        """[vocab_size] int64 bytes per token; a special token counts as one byte."""
        lengths = np.array([len(b) for b in self._table], dtype=np.int64)
        lengths[: self.n_special] = 1
        return lengths

    def to_dict(self) -> dict:
        return {"kind": "bpe", "hf_json": self._json, "specials": list(self.specials)}


def tokenizer_from_dict(state: dict) -> ByteTokenizer:
    """Rebuild a tokenizer from :meth:`to_dict` output (stored in checkpoints)."""
    kind = state.get("kind")
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer(state["hf_json"], state["specials"])
    raise ConfigError(f"unknown tokenizer kind {kind!r}; expected 'bytes' or 'bpe'")


def save_tokenizer(tok: ByteTokenizer, path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tok.to_dict(), fh)


def load_tokenizer(path) -> ByteTokenizer:
    with open(path, encoding="utf-8") as fh:
        return tokenizer_from_dict(json.load(fh))
