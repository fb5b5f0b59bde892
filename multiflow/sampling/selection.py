"""Which residues inverse folding designs: LigandMPNN-style chain and residue selections.

``--chains_to_design`` picks the designed chains (default: all); ``--fixed_residues`` keeps some
of their residues, or ``--redesigned_residues`` names exactly the residues to design. Labels are
matched exactly (see :mod:`multiflow.sampling.residues`); unknown, overlapping or undesignable
selections raise :class:`~multiflow.errors.ConfigError`. Residues without N, CA and C are left
out of the model input (and of every output) and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multiflow.constants import NUM_AA, UNK_TOKEN
from multiflow.data.chain import ProteinChain
from multiflow.errors import ConfigError
from multiflow.sampling.residues import ResidueRef, format_labels, parse_chain_ids, resolve_residues


@dataclass(frozen=True)
class InverseSelection:
    """Which residues of each input chain are designed, and which are kept in the model input."""

    designed: tuple[np.ndarray, ...]  # per chain [L] bool
    kept: tuple[np.ndarray, ...]  # per chain [L] bool, N/CA/C present
    designed_chains: tuple[str, ...]
    report: dict[str, Any]


def select_inverse(chains: Sequence[ProteinChain], chains_to_design: Any = None, fixed_residues: Any = None,
                   redesigned_residues: Any = None) -> InverseSelection:
    """Resolve LigandMPNN-style selections (exact labels; unknown or overlapping ones raise ConfigError)."""
    explicit = parse_chain_ids(chains_to_design, chains, "--chains_to_design")
    design_ids = explicit or [c.chain_id for c in chains]
    fixed = resolve_residues(fixed_residues, chains, "--fixed_residues")
    redesigned = resolve_residues(redesigned_residues, chains, "--redesigned_residues")
    overlap = [r.label for r in fixed if r.label in {x.label for x in redesigned}]
    if overlap:
        raise ConfigError(f"--fixed_residues and --redesigned_residues overlap at {format_labels(overlap, 10)}; "
                          "a residue is either fixed or redesigned")
    designed = _designed_masks(chains, design_ids, fixed, redesigned)
    kept = [c.backbone_mask.copy() for c in chains]
    no_bb = [r.label for r in redesigned if not kept[r.chain][r.position]]
    if no_bb:
        raise ConfigError(f"--redesigned_residues {format_labels(no_bb, 10)} lack N, CA or C atoms and cannot "
                          "be designed")
    designed = [d & m for d, m in zip(designed, kept)]
    if not any(d.any() for d in designed):
        raise ConfigError("nothing to design: every residue of the designed chains is fixed or lacks backbone atoms")
    report = _selection_report(chains, design_ids, fixed, designed, kept)
    return InverseSelection(tuple(designed), tuple(kept), tuple(report["designed_chains"]), report)


def _designed_masks(chains: Sequence[ProteinChain], design_ids: Sequence[str], fixed: Sequence[ResidueRef],
                    redesigned: Sequence[ResidueRef]) -> list[np.ndarray]:
    """Per chain [L] bool: exactly the redesigned residues, else the designed chains minus the fixed ones."""
    designed = [np.zeros(c.length, bool) for c in chains]
    if redesigned:
        outside = [r.label for r in redesigned if chains[r.chain].chain_id not in design_ids]
        if outside:
            raise ConfigError(f"--redesigned_residues {format_labels(outside, 10)} lie in chains that "
                              f"--chains_to_design ({','.join(design_ids)}) leaves fixed")
        for r in redesigned:
            designed[r.chain][r.position] = True
    else:
        for k, c in enumerate(chains):
            designed[k][:] = c.chain_id in design_ids
        for r in fixed:
            designed[r.chain][r.position] = False
    return designed


def _selection_report(chains: Sequence[ProteinChain], design_ids: Sequence[str], fixed: Sequence[ResidueRef],
                      designed: Sequence[np.ndarray], kept: Sequence[np.ndarray]) -> dict[str, Any]:
    """Designed/fixed chains and residue labels, dropped and unknown residues, and notes for the user."""
    labels = [c.residue_labels() for c in chains]

    def pick(masks: Sequence[np.ndarray]) -> list[str]:
        return [lab for k in range(len(chains)) for lab, on in zip(labels[k], masks[k]) if on]

    in_design = [np.full(c.length, c.chain_id in design_ids) & kept[k] & ~designed[k] for k, c in enumerate(chains)]
    dropped = pick([~k for k in kept])
    in_context = [r.label for r in fixed if chains[r.chain].chain_id not in design_ids]
    unknown = [lab for k, c in enumerate(chains) for lab, on, aa in zip(labels[k], kept[k] & ~designed[k], c.aatype)
               if on and aa == UNK_TOKEN]
    notes = []
    if dropped:
        notes.append(f"{len(dropped)} residue(s) lack N, CA or C and are left out of the model input and of "
                     f"every output (PDB and FASTA): {format_labels(dropped, 20)}")
    if in_context:
        notes.append(f"--fixed_residues {format_labels(in_context, 10)} lie in context chains, which are "
                     "fixed anyway")
    if unknown:
        notes.append(f"{len(unknown)} fixed residue(s) have an unknown identity and stay 'X' in the output: "
                     f"{format_labels(unknown, 20)}")
    return {
        "designed_chains": [c.chain_id for c in chains if c.chain_id in design_ids],
        "fixed_chains": [c.chain_id for c in chains if c.chain_id not in design_ids],
        "designed_residues": pick(designed),
        "fixed_residues": pick(in_design),
        "dropped_residues": dropped,
        "unknown_fixed_residues": unknown,
        "notes": notes,
    }


def residue_bias(chains: Sequence[ProteinChain], sel: InverseSelection, global_bias: np.ndarray | None,
                 bias_per_residue: dict[str, Any] | None = None,
                 omit_per_residue: dict[str, str] | None = None) -> np.ndarray | None:
    """[N_kept, 20] logit offsets over the kept residues (chain order), or ``global_bias`` [20] when no
    residue has its own. LigandMPNN's per-residue flags: ``{"A12": {"G": -0.3, "P": -10}}`` and
    ``{"A12": "CP"}`` (−inf = omitted), added to the global ``--bias_AA`` / ``--omit_AA`` offsets.
    Each label must be a designed residue; a residue left with no amino acid raises ConfigError."""
    from multiflow.sampling.inputs import parse_bias

    per = {}
    flags = (("--bias_AA_per_residue", bias_per_residue, '{"A12": {"G": -0.3, "P": -10}}', lambda v: parse_bias(v, None)),
             ("--omit_AA_per_residue", omit_per_residue, '{"A12": "CP"}', lambda v: parse_bias(None, v)))
    for flag, given, example, parse in flags:
        if given is None:
            continue
        if not isinstance(given, dict):
            raise ConfigError(f"{flag}: expected an object from residue label to offsets, e.g. {example}")
        for ref in resolve_residues(list(given), chains, flag):
            if not sel.designed[ref.chain][ref.position]:
                raise ConfigError(f"{flag}: {ref.label} is not designed (fixed, in a context chain or without "
                                  "backbone); per-residue offsets apply to designed residues only")
            try:
                offsets = parse(given[ref.label])
            except ConfigError as err:
                raise ConfigError(f"{flag} {ref.label}: {err}") from err
            if offsets is not None:
                per[ref] = per.get(ref, np.zeros(NUM_AA, np.float32)) + offsets
    if not per:
        return global_bias
    table = [np.zeros((c.length, NUM_AA), np.float32) for c in chains]
    for ref, offsets in per.items():
        table[ref.chain][ref.position] += offsets
    base = np.zeros(NUM_AA, np.float32) if global_bias is None else global_bias
    out = np.concatenate([t[k] for t, k in zip(table, sel.kept)]) + base  # [N_kept, 20]
    labels = np.concatenate([np.array(c.residue_labels(), dtype=object)[k] for c, k in zip(chains, sel.kept)])
    empty = labels[np.isneginf(out).all(-1)]
    if len(empty):
        raise ConfigError(f"the omit flags leave no amino acid at {format_labels(list(empty), 10)}; at least one "
                          "must remain")
    return out
