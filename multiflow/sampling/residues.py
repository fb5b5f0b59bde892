"""Residues as users name them: chain id + author residue number + insertion code.

``"A12"``, ``"B42C"`` are matched *exactly* against :meth:`ProteinChain.residue_labels` ("A7" never
matches "A72" or "A7A"). Anything that names a chain or residue absent from the structure raises
:class:`~multiflow.errors.ConfigError` naming it; nothing is silently ignored. Lists of labels are
written back compactly for messages and reports (:func:`format_labels`, :func:`compress_labels`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from multiflow.data.chain import ProteinChain
from multiflow.errors import ConfigError

_RESIDUE = re.compile(r"^(-?\d+)([A-Za-z]?)$")


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
