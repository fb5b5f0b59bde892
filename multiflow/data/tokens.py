"""Amino-acid vocabularies: letters <-> integer tokens.

Two alphabets share the first 20 indices (``constants.RESTYPES``):
  * the *chain* alphabet of :class:`~multiflow.data.chain.ProteinChain`: 20 amino acids + ``X``
    (index 20, an unknown or non-standard residue whose parent could not be found);
  * the *flow* alphabet seen by the model: 20 amino acids + ``MASK`` (index 20).
An unknown residue never reaches the model as a token: features turn it into MASK and
drop it from the sequence loss.
"""

from __future__ import annotations

import numpy as np
import torch

from multiflow.constants import NUM_AA, RESTYPES, UNK_LETTER, UNK_TOKEN
from multiflow.errors import BadSequenceError

_LETTER_TO_TOKEN: dict[str, int] = {aa: i for i, aa in enumerate(RESTYPES)}
_LETTER_TO_TOKEN[UNK_LETTER] = UNK_TOKEN
_TOKEN_TO_LETTER: str = RESTYPES + UNK_LETTER
MASK_LETTER: str = "_"
"""How a masked/undecided position is written in partial sequences (``"MK__EL___"``)."""


def sequence_to_tokens(sequence: str, *, allow_unknown: bool = True) -> np.ndarray:
    """Encode a one-letter sequence as int64 tokens in the chain alphabet.

    Letters are case-insensitive. ``X`` maps to the unknown token when ``allow_unknown``.
    Raises :class:`BadSequenceError` naming the offending letters and their positions.
    """
    if not isinstance(sequence, str):
        raise BadSequenceError(f"expected a sequence string, got {type(sequence).__name__}")
    seq = sequence.strip().upper()
    if not seq:
        raise BadSequenceError("the sequence is empty; expected at least one amino-acid letter")
    bad = [(i, c) for i, c in enumerate(seq) if c not in _LETTER_TO_TOKEN or (c == UNK_LETTER and not allow_unknown)]
    if bad:
        shown = ", ".join(f"{c!r} at {i + 1}" for i, c in bad[:10])
        more = f" (+{len(bad) - 10} more)" if len(bad) > 10 else ""
        allowed = RESTYPES + (UNK_LETTER if allow_unknown else "")
        raise BadSequenceError(f"sequence has letters outside the alphabet {allowed}: {shown}{more}")
    return np.fromiter((_LETTER_TO_TOKEN[c] for c in seq), dtype=np.int64, count=len(seq))


def tokens_to_sequence(tokens: np.ndarray | torch.Tensor | list[int]) -> str:
    """Decode chain-alphabet tokens (0..20) to letters; 20 becomes ``X``."""
    arr = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D token array, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > NUM_AA):
        raise ValueError(f"tokens must lie in 0..{NUM_AA}, got range {arr.min()}..{arr.max()}")
    return "".join(_TOKEN_TO_LETTER[int(t)] for t in arr)


def partial_sequence_to_tokens(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a partial sequence such as ``"MK__EL___"``.

    Returns ``(tokens [N] int64, fixed [N] bool)``: positions written ``_`` are free
    (token set to ``UNK_TOKEN`` as a placeholder, ``fixed`` False); letters are fixed.
    """
    if not pattern or not pattern.strip():
        raise BadSequenceError("the partial sequence is empty")
    pattern = pattern.strip()
    fixed = np.array([c != MASK_LETTER for c in pattern], dtype=bool)
    letters = "".join(c if c != MASK_LETTER else UNK_LETTER for c in pattern)
    try:
        tokens = sequence_to_tokens(letters, allow_unknown=True)
    except BadSequenceError as err:
        raise BadSequenceError(f"{err} (use '{MASK_LETTER}' for positions to design)") from None
    return tokens, fixed
