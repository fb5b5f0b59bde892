"""What users type: residue selections, amino-acid biases, contig strings, lengths and sequences.

Residues are named as users write them: chain id + author residue number + insertion code
(``"A12"``, ``"B42C"``), matched *exactly* against :meth:`ProteinChain.residue_labels` ("A7" never
matches "A72" or "A7A"). Anything that names a chain or residue absent from the structure raises
:class:`~multiflow.errors.ConfigError` naming it; nothing is silently ignored.

Contig strings follow RFdiffusion::

    "5-15/A10-25/30-40"        free 5..15 residues, residues A10..A25 of the input, free 30..40
    "A1-50/0 60-80"            "/0 " (or a space, or a "0" segment) starts a new output chain
    "10/A7/10"                 a single motif residue; a bare number is a fixed free length

A motif segment ``A10-25`` keeps the input residues from the one labelled ``A10`` to the one
labelled ``A25`` in file order (endpoints may carry insertion codes: ``A52A-55``). Every residue
number in the range must be present in the file with its N, CA and C atoms, else the error
lists what is missing. Free lengths are drawn per design from a seeded generator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from multiflow.constants import RESTYPES, UNK_LETTER, UNK_TOKEN
from multiflow.data.chain import ProteinChain
from multiflow.data.tokens import partial_sequence_to_tokens, sequence_to_tokens
from multiflow.errors import BadSequenceError, ConfigError

_RESIDUE = re.compile(r"^(-?\d+)([A-Za-z]?)$")
_MOTIF = re.compile(r"^([A-Za-z])(-?\d+)([A-Za-z]?)(?:-(-?\d+)([A-Za-z]?))?$")
_FREE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_CONTIG_LENGTH = 100_000  # sanity bound on a single free segment (residues)
MAX_LENGTH = 2000  # residues per design; longer needs allow_long=True


# --- residue selections ----------------------------------------------------------------------
@dataclass(frozen=True)
class ResidueRef:
    """One residue of a multi-chain structure: which chain (index into the list) and position."""

    chain: int
    position: int
    label: str  # "B42C"


def residue_table(chains: Sequence[ProteinChain]) -> dict[str, ResidueRef]:
    """Label -> residue for every residue of ``chains`` (labels are unique within a structure)."""
    table: dict[str, ResidueRef] = {}
    for c, chain in enumerate(chains):
        for p, label in enumerate(chain.residue_labels()):
            table.setdefault(label, ResidueRef(c, p, label))
    return table


def split_labels(text: str | Iterable[str] | None) -> list[str]:
    """``"A12 A13,B42C"`` or a list -> ``["A12", "A13", "B42C"]`` (spaces and commas separate)."""
    if text is None:
        return []
    items = [text] if isinstance(text, str) else list(text)
    return [tok for item in items for tok in re.split(r"[\s,]+", str(item).strip()) if tok]


def parse_chain_ids(text: str | Iterable[str] | None, chains: Sequence[ProteinChain], flag: str) -> list[str]:
    """``"A,B"`` -> ``["A", "B"]``, each checked against the structure's chains."""
    ids = split_labels(text)
    present = [c.chain_id for c in chains]
    unknown = [c for c in ids if c not in present]
    if unknown:
        raise ConfigError(f"{flag}: chain(s) {', '.join(unknown)} not in the structure; chains present: "
                          f"{', '.join(present)}")
    return list(dict.fromkeys(ids))


def resolve_residues(text: str | Iterable[str] | None, chains: Sequence[ProteinChain], flag: str) -> list[ResidueRef]:
    """Residue labels -> residues, matched exactly; unknown chains or residues raise ConfigError."""
    table = residue_table(chains)
    present = [c.chain_id for c in chains]
    refs, unknown_chain, unknown_res = [], [], []
    for label in split_labels(text):
        if label in table:
            refs.append(table[label])
            continue
        owners = [c for c in present if label.startswith(c) and _RESIDUE.match(label[len(c):])]
        (unknown_res if owners else unknown_chain).append(label)
    if unknown_chain:
        raise ConfigError(f"{flag}: {', '.join(unknown_chain[:10])} name(s) no chain of the structure "
                          f"(chains present: {', '.join(present)}); write residues as chain+number+insertion code, "
                          "e.g. A12 or B42C")
    if unknown_res:
        raise ConfigError(f"{flag}: residue(s) {', '.join(unknown_res[:10])} not found in the structure "
                          f"(matched exactly, with insertion codes; {_ranges(chains)})")
    return list({r.label: r for r in refs}.values())


def _ranges(chains: Sequence[ProteinChain]) -> str:
    parts = []
    for chain in chains:
        labels = chain.residue_labels()
        icodes = [lab for lab, ic in zip(labels, chain.insertion_code) if ic]
        extra = f", with insertion codes {', '.join(icodes[:5])}{'...' if len(icodes) > 5 else ''}" if icodes else ""
        parts.append(f"chain {chain.chain_id}: {labels[0]}..{labels[-1]}{extra}")
    return "; ".join(parts)


def format_labels(refs: Iterable[ResidueRef] | Iterable[str], limit: int | None = None) -> str:
    labels = [r.label if isinstance(r, ResidueRef) else str(r) for r in refs]
    if limit is not None and len(labels) > limit:
        return " ".join(labels[:limit]) + f" ... (+{len(labels) - limit} more)"
    return " ".join(labels) if labels else "(none)"


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


# --- contigs ---------------------------------------------------------------------------------------
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


def compress_labels(labels: Sequence[str], limit: int = 40) -> str:
    """``["A1", "A2", "A3", "A7", "B42C"]`` -> ``"A1-A3 A7 B42C"`` (runs of consecutive plain numbers)."""
    parts: list[str] = []
    run: list[tuple[str, int, str]] = []

    def flush() -> None:
        if run:
            parts.append(run[0][2] if len(run) == 1 else f"{run[0][2]}-{run[-1][2]}")
            run.clear()

    for label in labels:
        m = re.fullmatch(r"(.*?)(-?\d+)", label)
        if m and run and run[-1][0] == m.group(1) and run[-1][1] + 1 == int(m.group(2)):
            run.append((m.group(1), int(m.group(2)), label))
            continue
        flush()
        if m:
            run.append((m.group(1), int(m.group(2)), label))
        else:
            parts.append(label)
    flush()
    if len(parts) > limit:
        return " ".join(parts[:limit]) + f" ... (+{len(parts) - limit} more groups)"
    return " ".join(parts) if parts else "(none)"
