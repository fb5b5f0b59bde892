"""RFdiffusion contig strings: parsed, resolved against the input structure, laid out per design.

Contig strings follow RFdiffusion::

    "5-15/A10-25/30-40"        free 5..15 residues, residues A10..A25 of the input, free 30..40
    "A1-50/0 60-80"            "/0 " (or a space, or a "0" segment) starts a new output chain
    "10/A7/10"                 a single motif residue; a bare number is a fixed free length

A motif segment ``A10-25`` keeps the input residues from the one labelled ``A10`` to the one
labelled ``A25`` in file order (endpoints may carry insertion codes: ``A52A-55``; labels are
matched exactly, see :mod:`multiflow.sampling.residues`). Every residue number in the range must
be present in the file with its N, CA and C atoms, else the error lists what is missing. Free
lengths are drawn per design from a seeded generator.

Residue selections and the other user inputs (lengths, sequences, biases) live in
:mod:`multiflow.sampling.residues` and :mod:`multiflow.sampling.inputs`; their names are
re-exported here for older imports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multiflow.data.chain import ProteinChain
from multiflow.errors import ConfigError
from multiflow.sampling.inputs import (  # noqa: F401  (re-exported: these names used to live here)
    MAX_LENGTH, check_length, parse_bias, parse_length_range, parse_lengths, parse_partial, safe_name, split_chains,
    tokens_for, unique_names,
)
from multiflow.sampling.residues import (  # noqa: F401  (re-exported: these names used to live here)
    ResidueRef, compress_labels, format_labels, parse_chain_ids, resolve_residues, residue_table, split_labels,
)

_MOTIF = re.compile(r"^([A-Za-z])(-?\d+)([A-Za-z]?)(?:-(-?\d+)([A-Za-z]?))?$")
_FREE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_CONTIG_LENGTH = 100_000  # sanity bound on a single free segment (residues)


@dataclass(frozen=True)
class FreeSegment:
    """Residues to generate; a length in [low, high] is drawn per design."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class MotifSegment:
    """Input residues kept (structure, and sequence on request) from ``start`` to ``end`` label."""

    chain_id: str
    start: str  # residue label, e.g. "A10"
    end: str  # residue label, e.g. "A25"
    text: str  # as written

    def __str__(self) -> str:
        return self.text


Segment = FreeSegment | MotifSegment


@dataclass(frozen=True)
class ContigSpec:
    """A parsed contig string: output chains, each a list of segments."""

    chains: tuple[tuple[Segment, ...], ...]
    text: str

    def motif_chains(self) -> list[str]:
        return list(dict.fromkeys(s.chain_id for ch in self.chains for s in ch if isinstance(s, MotifSegment)))

    def length_bounds(self, motif_lengths: dict[str, int]) -> tuple[int, int]:
        lo = hi = 0
        for ch in self.chains:
            for s in ch:
                n = (s.low, s.high) if isinstance(s, FreeSegment) else (motif_lengths[s.text],) * 2
                lo, hi = lo + n[0], hi + n[1]
        return lo, hi


def parse_contigs(text: str | Sequence[str]) -> ContigSpec:
    """Parse an RFdiffusion contig string (see the module docstring); syntax errors raise ConfigError."""
    if not isinstance(text, str):
        text = " ".join(text)
    raw = text.strip().strip("[]").strip()
    if not raw:
        raise ConfigError("the contig string is empty; expected e.g. '5-15/A10-25/30-40'")
    chains: list[list[Segment]] = [[]]
    for word in raw.split():
        if chains[-1]:
            chains.append([])
        for part in word.split("/"):
            part = part.strip()
            if part in ("", "0"):
                if part == "0" and chains[-1]:
                    chains.append([])
                continue
            chains[-1].append(_parse_segment(part, raw))
    chains = [ch for ch in chains if ch]
    if not chains:
        raise ConfigError(f"contig {raw!r} has no segments; expected e.g. '5-15/A10-25/30-40'")
    if not any(isinstance(s, MotifSegment) for ch in chains for s in ch):
        raise ConfigError(f"contig {raw!r} names no motif segment (e.g. A10-25); for unconditional design use "
                          "`multiflow sample`")
    return ContigSpec(tuple(tuple(ch) for ch in chains), raw)


def _parse_segment(part: str, raw: str) -> Segment:
    free = _FREE.match(part)
    if free:
        low = int(free.group(1))
        high = int(free.group(2)) if free.group(2) is not None else low
        if low > high or high > MAX_CONTIG_LENGTH:
            raise ConfigError(f"contig {raw!r}: segment {part!r} must be a length or a range low-high with low <= high")
        return FreeSegment(low, high)
    motif = _MOTIF.match(part)
    if motif:
        chain_id, n0, ic0, n1, ic1 = motif.groups()
        start = f"{chain_id}{n0}{ic0}"
        end = start if n1 is None else f"{chain_id}{n1}{ic1}"
        return MotifSegment(chain_id, start, end, part)
    raise ConfigError(f"contig {raw!r}: cannot read segment {part!r}; expected a length (30), a range (5-15), "
                      "or input residues as chain+range (A10-25)")


def resolve_motifs(spec: ContigSpec, chains: Sequence[ProteinChain]) -> dict[str, list[ResidueRef]]:
    """Motif segment text -> its input residues, validated against the structure (ConfigError if absent)."""
    by_id = {c.chain_id: (i, c) for i, c in enumerate(chains)}
    out: dict[str, list[ResidueRef]] = {}
    for seg in (s for ch in spec.chains for s in ch if isinstance(s, MotifSegment)):
        if seg.chain_id not in by_id:
            raise ConfigError(f"contig segment {seg.text}: chain {seg.chain_id} is not in the structure "
                              f"(chains present: {', '.join(by_id)})")
        c, chain = by_id[seg.chain_id]
        labels = chain.residue_labels()
        absent = [lab for lab in (seg.start, seg.end) if lab not in labels]
        if absent:
            raise ConfigError(f"contig segment {seg.text}: residue(s) {', '.join(absent)} not in the structure "
                              f"(chain {seg.chain_id} runs {labels[0]}..{labels[-1]})")
        i0, i1 = labels.index(seg.start), len(labels) - 1 - labels[::-1].index(seg.end)
        if i0 > i1:
            raise ConfigError(f"contig segment {seg.text}: {seg.start} comes after {seg.end} in the file")
        positions = list(range(i0, i1 + 1))
        numbers = set(chain.residue_index[positions].tolist())
        lo, hi = int(chain.residue_index[i0]), int(chain.residue_index[i1])
        gaps = [f"{seg.chain_id}{n}" for n in range(lo, hi + 1) if n not in numbers]
        if gaps:
            raise ConfigError(f"contig segment {seg.text} names residue(s) absent from the structure: "
                              f"{format_labels(gaps, 10)}; split the segment around the gap")
        no_bb = [labels[p] for p in positions if not chain.backbone_mask[p]]
        if no_bb:
            raise ConfigError(f"contig segment {seg.text}: residue(s) {format_labels(no_bb, 10)} lack N, CA or C "
                              "atoms, so they cannot be a fixed motif")
        out[seg.text] = [ResidueRef(c, p, labels[p]) for p in positions]
    return out


@dataclass(frozen=True)
class ContigLayout:
    """One design's concrete layout: per output chain, a list of (free length | motif residues)."""

    chains: tuple[tuple[int | tuple[ResidueRef, ...], ...], ...]

    @property
    def length(self) -> int:
        return sum(x if isinstance(x, int) else len(x) for ch in self.chains for x in ch)

    def describe(self) -> str:
        """The sampled contig, e.g. ``"7/A10-25/33"`` (chains separated by ``/0 ``)."""
        return "/0 ".join("/".join(_describe(x) for x in ch) for ch in self.chains)


def _describe(x: int | tuple[ResidueRef, ...]) -> str:
    if isinstance(x, int):
        return str(x)
    first, last = x[0].label, x[-1].label
    return first if len(x) == 1 else f"{first}-{_number_part(last)}"


def _number_part(label: str) -> str:
    m = re.search(r"-?\d+[A-Za-z]?$", label)
    return m.group(0) if m else label


def sample_layout(spec: ContigSpec, motifs: dict[str, list[ResidueRef]], rng: np.random.Generator,
                  length: tuple[int, int] | None = None, max_tries: int = 1000) -> ContigLayout:
    """Draw the free lengths of one design (uniform per segment; within ``length`` if given)."""
    motif_lengths = {k: len(v) for k, v in motifs.items()}
    if length is not None:
        lo, hi = spec.length_bounds(motif_lengths)
        if hi < length[0] or lo > length[1]:
            raise ConfigError(f"contig {spec.text!r} gives total lengths {lo}-{hi}, which cannot meet the requested "
                              f"length {length[0]}-{length[1]}")
    for _ in range(max_tries):
        chains = tuple(
            tuple(int(rng.integers(s.low, s.high + 1)) if isinstance(s, FreeSegment) else tuple(motifs[s.text])
                  for s in ch)
            for ch in spec.chains
        )
        chains = tuple(tuple(x for x in ch if not (isinstance(x, int) and x == 0)) for ch in chains)
        layout = ContigLayout(tuple(ch for ch in chains if ch))
        if length is None or length[0] <= layout.length <= length[1]:
            return layout
    raise ConfigError(f"could not draw free lengths for contig {spec.text!r} with total length in "
                      f"{length[0]}-{length[1]} after {max_tries} tries; widen the ranges")
