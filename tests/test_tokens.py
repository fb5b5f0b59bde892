import numpy as np
import pytest

from multiflow.data.tokens import partial_sequence_to_tokens, sequence_to_tokens, tokens_to_sequence
from multiflow.errors import BadSequenceError


def test_round_trip_all_letters():
    seq = "ARNDCQEGHILKMFPSTWYVX"
    assert tokens_to_sequence(sequence_to_tokens(seq)) == seq
    assert list(sequence_to_tokens(seq)) == list(range(21))


def test_odd_letters_are_named():
    with pytest.raises(BadSequenceError, match=r"'B' at 3.*'1' at 6"):
        sequence_to_tokens("AAB A1")
    with pytest.raises(BadSequenceError, match="empty"):
        sequence_to_tokens("  ")
    with pytest.raises(BadSequenceError):
        sequence_to_tokens("AXA", allow_unknown=False)


def test_partial_sequence():
    tokens, fixed = partial_sequence_to_tokens("MK__EL")
    assert fixed.tolist() == [True, True, False, False, True, True]
    assert tokens_to_sequence(tokens) == "MKXXEL"
    with pytest.raises(BadSequenceError, match="'_'"):
        partial_sequence_to_tokens("MK__Z")
    assert np.issubdtype(tokens.dtype, np.integer)
