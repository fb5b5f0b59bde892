"""Sample-quality metrics for text and code; pure functions on strings and token arrays.

* :func:`python_validity` - fraction of samples that ``ast.parse`` and that ``compile``.
* :func:`distinct_n`, :func:`unigram_entropy` - diversity of a set of samples.
* :class:`NGramIndex` - longest n-gram of a sample that also occurs in the training data
  (exact, via a suffix array of the training stream built by prefix doubling in numpy;
  sorting stops once the prefix length reaches the longest query, which bounds the cost).
* :func:`bits_per_byte` - nats over a number of bytes -> bits per byte.
"""

from __future__ import annotations

import ast
import bisect
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Convert a summed negative log-likelihood (nats) over ``n_bytes`` bytes to bits per byte."""
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    return float(total_nats) / math.log(2.0) / n_bytes


def python_validity(texts: Sequence[str]) -> dict[str, float]:
    """Fractions of texts that parse (``ast.parse``) and compile (``compile(..., 'exec')``).

    Compiling catches what the parser lets through (``return`` outside a function, bad
    ``nonlocal``...). Null bytes and other errors count as failures.
    """
    if not texts:
        raise ValueError("python_validity needs at least one text")
    parsed = compiled = 0
    for text in texts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes in samples
            try:
                ast.parse(text)
                parsed += 1
                compile(text, "<sample>", "exec", dont_inherit=True)
                compiled += 1
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                pass
    return {"parse_rate": parsed / len(texts), "compile_rate": compiled / len(texts)}


def _ngrams(seq: Sequence, n: int) -> Iterable[tuple]:
    return (tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


def distinct_n(samples: Sequence[Sequence], n: int) -> float:
    """Unique n-grams / total n-grams over all samples (each a string or a token list).

    1.0 means no n-gram repeats anywhere in the set; 0.0 is returned when no sample
    is long enough to hold an n-gram.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts = Counter(g for s in samples for g in _ngrams(list(s), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def unigram_entropy(samples: Sequence[Sequence]) -> float:
    """Entropy in bits of the pooled unigram (symbol or token) distribution of the samples."""
    counts = Counter(x for s in samples for x in s)
    total = sum(counts.values())
    if not total:
        return 0.0
    p = np.array(list(counts.values()), dtype=np.float64) / total
    return float(-(p * np.log2(p)).sum())


def _suffix_array(stream: np.ndarray, depth: int) -> np.ndarray:
    """Start positions sorted by their first ``depth`` symbols (prefix doubling). int64 [n]."""
    n = stream.size
    rank = np.unique(stream, return_inverse=True)[1].astype(np.int64)  # dense ranks 0..r-1
    k = 1
    while k < depth:
        nxt = np.full(n, -1, dtype=np.int64)
        nxt[: n - k] = rank[k:] if k < n else nxt[:0]
        key = rank * (n + 1) + (nxt + 1)  # order by (rank[i], rank[i+k]); past the end sorts first
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        new = np.empty(n, dtype=np.int64)
        new[order] = np.concatenate([[0], np.cumsum(sorted_key[1:] != sorted_key[:-1])])
        rank, k = new, 2 * k
        if rank.max() == n - 1:  # every suffix already distinct
            break
    return np.argsort(rank, kind="stable")


class NGramIndex:
    """Exact longest-match queries of token sequences against a training token stream.

    ``max_query`` bounds the length of a match that is found exactly (longer matches are
    reported as ``max_query``); it is typically the sample length.
    """

    def __init__(self, stream: np.ndarray, max_query: int = 256) -> None:
        arr = np.asarray(stream).astype(np.int64).ravel()
        if arr.size == 0:
            raise ValueError("cannot index an empty training stream")
        if arr.min() < 0:
            raise ValueError("token ids must be non-negative")
        self.width = 1 if arr.max() < 2**8 else (2 if arr.max() < 2**16 else 4)
        self.stream = arr
        self.max_query = int(max_query)
        self._buf = arr.astype(f">u{self.width}").tobytes()  # big-endian: bytes order == numeric order
        self.sa = _suffix_array(arr, self.max_query)

    def _key(self, start: int, length: int) -> bytes:
        w = self.width
        return self._buf[start * w : (start + length) * w]

    def _lcp(self, query: np.ndarray, start: int) -> int:
        other = self.stream[start : start + query.size]
        eq = query[: other.size] == other
        return int(eq.size if eq.all() else np.argmin(eq))

    def longest_match_at(self, query: np.ndarray) -> int:
        """Length of the longest prefix of ``query`` that occurs in the stream."""
        q = np.asarray(query, dtype=np.int64)[: self.max_query]
        if q.size == 0:
            return 0
        qb = q.astype(f">u{self.width}").tobytes()
        pos = bisect.bisect_left(self.sa, qb, key=lambda s: self._key(int(s), q.size))
        best = 0
        for nb in (pos - 1, pos):
            if 0 <= nb < self.sa.size:
                best = max(best, self._lcp(q, int(self.sa[nb])))
        return best

    def longest_copied(self, sample: Sequence[int] | np.ndarray) -> int:
        """Longest n (tokens) such that some n-gram of ``sample`` occurs in the training stream."""
        s = np.asarray(sample, dtype=np.int64)
        best = 0
        for i in range(s.size):
            if s.size - i <= best:  # nothing longer can start here
                break
            best = max(best, self.longest_match_at(s[i:]))
        return best
