"""What users type besides residues and contigs: lengths, sequences, amino-acid biases, names.

Lengths: ``100``, ``"80,100"`` or ``"70-150:10"`` per design, a total ``"100-120"`` for scaffolds,
at most ``MAX_LENGTH`` residues unless ``allow_long``. Sequences: chains separated by ``/`` or
``:``, ``_`` for positions to design in a partial sequence. Biases: ``bias_AA "A:-1.0,W:0.5"``
and ``omit_AA "CX"`` as a logit offset. Bad input raises :class:`~multiflow.errors.ConfigError`
or :class:`~multiflow.errors.BadSequenceError` naming what was given and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiflow.constants import RESTYPES, UNK_LETTER, UNK_TOKEN
from multiflow.data.tokens import partial_sequence_to_tokens, sequence_to_tokens
from multiflow.errors import BadSequenceError, ConfigError

MAX_LENGTH = 2000  # residues per design; longer needs allow_long=True


# --- amino-acid bias -----------------------------------------------------------------------------
def parse_bias(bias_aa: str | dict[str, float] | None, omit_aa: str | Iterable[str] | None) -> np.ndarray | None:
    """``bias_AA "A:-1.0,W:0.5"`` and ``omit_AA "CX"`` -> a [20] logit offset (−inf = omitted), or None.

    ``X`` in ``omit_AA`` is accepted and has no effect (the model never emits X).
    """
    bias = np.zeros(len(RESTYPES), dtype=np.float32)
    if isinstance(bias_aa, str) and bias_aa.strip():
        pairs = {}
        for item in filter(None, (p.strip() for p in bias_aa.split(","))):
            letter, sep, value = item.partition(":")
            try:
                pairs[letter.strip()] = float(value) if sep else float("nan")
            except ValueError:
                pairs[letter.strip()] = float("nan")
            if not sep or not np.isfinite(pairs[letter.strip()]):
                raise ConfigError(f"--bias_AA: cannot read {item!r}; expected LETTER:VALUE pairs such as "
                                  "'A:-1.0,W:0.5'")
        bias_aa = pairs
    for letter, value in dict(bias_aa or {}).items():
        key = str(letter).upper()
        if key not in RESTYPES:
            raise ConfigError(f"--bias_AA: {letter!r} is not one of the 20 amino acids {RESTYPES}")
        if not np.isfinite(float(value)):
            raise ConfigError(f"--bias_AA: value for {letter!r} must be finite, got {value!r}")
        bias[RESTYPES.index(key)] += float(value)
    omit = "".join(omit_aa) if omit_aa is not None and not isinstance(omit_aa, str) else (omit_aa or "")
    omit = "".join(omit.split()).replace(",", "").upper()
    bad = sorted({c for c in omit if c not in RESTYPES + UNK_LETTER})
    if bad:
        raise ConfigError(f"--omit_AA: letter(s) {', '.join(bad)} are not amino acids; expected letters of {RESTYPES}X")
    letters = {c for c in omit if c in RESTYPES}
    if len(letters) == len(RESTYPES):
        raise ConfigError("--omit_AA omits all 20 amino acids; at least one must remain")
    for c in letters:
        bias[RESTYPES.index(c)] = -np.inf
    return bias if (bias != 0).any() else None



def read_json(path: str | Path | None, flag: str) -> Any:
    """The JSON file a flag names (None when not given); unreadable or invalid files raise ConfigError."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot read it ({err.strerror or err})") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{flag} {path} is not valid JSON ({err})") from err


# --- lengths and sequences -------------------------------------------------------------------------
def parse_lengths(spec: int | str | Sequence[int]) -> list[int]:
    """``100``, ``[80, 100]``, ``"80,100"`` or ``"70-150:10"`` (start-stop:step, stop inclusive) -> lengths."""
    if isinstance(spec, (int, np.integer)):
        return [int(spec)]
    if not isinstance(spec, str):
        return [int(x) for x in spec]
    out: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?::(\d+))?)?", part)
        if not m:
            raise ConfigError(f"cannot read lengths {spec!r}; expected e.g. '100', '80,100' or '70-150:10'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        step = int(m.group(3)) if m.group(3) else 1
        if hi < lo or step < 1:
            raise ConfigError(f"length range {part!r} must be start-stop:step with start <= stop and step >= 1")
        out.extend(range(lo, hi + 1, step))
    if not out:
        raise ConfigError(f"no lengths in {spec!r}")
    return out


def check_length(n: int, what: str, allow_long: bool) -> None:
    if n < 1:
        raise ConfigError(f"{what}: length must be >= 1 residue, got {n}")
    if n > MAX_LENGTH and not allow_long:
        raise ConfigError(f"{what}: length {n} exceeds {MAX_LENGTH} residues; pass --allow_long (allow_long=True) "
                          "if you mean it (memory and time grow with length)")


def split_chains(sequence: str) -> list[str]:
    """``"MKV/GSE"`` or ``"MKV:GSE"`` -> one string per chain (empty chains are an error)."""
    parts = [p.strip() for p in re.split(r"[/:]", sequence.strip())]
    if not parts or any(not p for p in parts):
        raise BadSequenceError(f"sequence {sequence!r} has an empty chain; chains are separated by '/' or ':'")
    return parts


def tokens_for(sequence: str, what: str) -> np.ndarray:
    try:
        return sequence_to_tokens(sequence, allow_unknown=False)
    except BadSequenceError as err:
        raise BadSequenceError(f"{what}: {err}") from None


def parse_partial(pattern: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """``"MK__EL/___"`` -> chain lengths, tokens [N] (X where free), fixed [N] bool."""
    parts = split_chains(pattern)
    tokens, fixed = zip(*(partial_sequence_to_tokens(p) for p in parts))
    toks = np.concatenate(tokens)
    fix = np.concatenate(fixed)
    bad = np.flatnonzero(fix & (toks == UNK_TOKEN))
    if bad.size:
        raise BadSequenceError(f"partial sequence {pattern!r}: 'X' at position(s) {(bad + 1).tolist()[:10]} is not "
                               "an amino acid; write '_' for positions to design")
    return [len(p) for p in parts], toks, fix


def parse_length_range(spec: int | str | Sequence[int] | None) -> tuple[int, int] | None:
    """Total-length constraint ``100`` or ``"100-120"`` -> (low, high); None stays None."""
    if spec is None:
        return None
    if isinstance(spec, (int, np.integer)):
        return int(spec), int(spec)
    if not isinstance(spec, str):
        lo, hi = (int(x) for x in spec)
        return lo, hi
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", spec)
    if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
        raise ConfigError(f"cannot read total length {spec!r}; expected e.g. '100' or '100-120'")
    lo = int(m.group(1))
    return lo, int(m.group(2) or lo)


def safe_name(text: str) -> str:
    """A FASTA header or file stem as a file-name-safe design name (first word; [A-Za-z0-9_.-] only)."""
    word = re.split(r"[\s,]+", str(text).strip(), maxsplit=1)[0] if str(text).strip() else ""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", word).strip("._")[:80]


def unique_names(records: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Make the names of (name, value) pairs unique by appending _2, _3, ... to repeats."""
    seen: dict[str, int] = {}
    out = []
    for name, value in records:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", value))
    return out
