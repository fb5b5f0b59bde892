"""Metrics on hand-made examples: parse/compile rate, distinct-n, entropy, memorisation, bpb."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiflow.text.metrics import NGramIndex, bits_per_byte, distinct_n, python_validity, unigram_entropy


def test_python_validity():
    texts = ["x = 1\n", "def f(:\n", "return 1\n", "for i in range(3):\n    print(i)\n"]
    out = python_validity(texts)
    # "return 1" at module level parses but does not compile
    assert out == {"parse_rate": 0.75, "compile_rate": 0.5}
    assert python_validity(["a\x00b"])["parse_rate"] == 0.0


def test_distinct_n_and_entropy():
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["abc", "abc"], 3) == 0.5
    assert distinct_n([[1, 2, 3, 4]], 1) == 1.0
    assert distinct_n(["a"], 2) == 0.0
    assert unigram_entropy(["aaaa"]) == 0.0
    assert unigram_entropy(["abcd", "abcd"]) == pytest.approx(2.0)


def test_longest_copied_hand_made():
    train = np.frombuffer(b"the quick brown fox jumps over the lazy dog", dtype=np.uint8)
    index = NGramIndex(train, max_query=64)
    enc = lambda s: np.frombuffer(s.encode(), dtype=np.uint8)  # noqa: E731
    assert index.longest_copied(enc("xx brown fox yy")) == len(" brown fox ")
    assert index.longest_copied(enc("QQQ")) == 0
    assert index.longest_copied(enc("lazy dog")) == 8
    short = NGramIndex(train, max_query=4)
    assert short.longest_copied(enc("lazy dog")) == 4  # capped at max_query


def test_longest_copied_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        train = rng.integers(0, 3, size=int(rng.integers(1, 80))) * 1000  # wide ids (2-byte keys)
        query = rng.integers(0, 3, size=int(rng.integers(1, 25))) * 1000
        t, q = train.tolist(), query.tolist()

        def occurs(g):
            return any(t[i : i + len(g)] == g for i in range(len(t) - len(g) + 1))

        brute = max(n for n in range(len(q) + 1) if any(occurs(q[i : i + n]) for i in range(len(q) - n + 1)))
        assert NGramIndex(train, max_query=32).longest_copied(query) == brute


def test_bits_per_byte():
    assert bits_per_byte(math.log(2) * 80, 10) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)
