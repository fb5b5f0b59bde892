"""Design tasks on a trained model: co-design, inverse folding, forward folding, motif scaffolding.

Every task is a pure function of a :class:`~multiflow.training.checkpoint.LoadedModel`, a
:class:`~multiflow.sampling.solver.SolverConfig` and the user's inputs (ProteinChain records,
sequences, contigs), returning a :class:`DesignSet`. They all reduce to one engine: a list of
:class:`Problem` (what is fixed, to which values) sampled by the joint Euler solver, many designs
per forward pass, in batches of at most ``max_tokens`` = B × N_max residues (and ``batch_size``).
Problems are built and samples turned back into chains by :mod:`multiflow.sampling.assembly`;
inverse folding's residue selections are resolved by :mod:`multiflow.sampling.selection`.

Coordinates: outputs are in the input's frame, so a motif or a fixed backbone sits exactly where
it was in the user's file (see :mod:`multiflow.sampling.assembly`).

Reproducibility: one seeded generator per call; the same seed, inputs, settings and
``max_tokens``/``batch_size`` give the same designs (batching changes the random stream).

``score``: mean negative log-likelihood (nats) of the designed residues' amino acids under the
model given the final structure, all designed positions masked and the rest of the sequence
visible (one extra forward per batch; lower is better; over all residues when none was designed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from multiflow.constants import C_IDX, CA_IDX, N_IDX, RESTYPES, UNK_TOKEN
from multiflow.data.batch import collate
from multiflow.data.chain import ProteinChain
from multiflow.errors import BadSequenceError, ConfigError
from multiflow.geometry.superposition import aligned_rmsd
from multiflow.sampling.assembly import (
    Assembly, assemble, chain_layout, frames_from_chain, fresh_assembly, make_problem, model_residue_index,
    trajectory_chains,
)
from multiflow.sampling.contigs import ContigLayout, parse_contigs, resolve_motifs, sample_layout
from multiflow.sampling.engine import (  # noqa: F401  (re-exported: the engine's records are part of the task API)
    BatchCallback, GuidedModel, Problem, Sample, finish_problems, model_device, plan_batches, run_problems,
    sequence_nll,
)
from multiflow.sampling.inputs import (
    check_length, parse_bias, parse_length_range, parse_lengths, parse_partial, safe_name, split_chains, tokens_for,
    unique_names,
)
from multiflow.sampling.outputs import Design, DesignSet
from multiflow.sampling.selection import InverseSelection, residue_bias, select_inverse
from multiflow.sampling.solver import Conditioning, FlowState, SolverConfig


def _common(kw: dict[str, Any]) -> dict[str, Any]:
    """The engine keywords a task passes through (anything else is a caller's typo)."""
    keys = ("max_tokens", "batch_size", "save_trajectory", "trajectory_stride", "on_batch")
    unknown = sorted(set(kw) - set(keys))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}; engine options are {list(keys)}")
    return dict(kw)


def _finished(problems: Sequence[Problem], samples: Sequence[Sample | None], meta: Sequence[Any]):
    """(problem, sample, meta) of the problems that have a sample (all, unless sampling stopped part-way)."""
    return [(p, s, m) for p, s, m in zip(problems, samples, meta) if s is not None]


def _confidence_metrics(sample: Sample) -> dict[str, Any]:
    return {"mean_plddt": None if sample.confidence is None else round(100.0 * float(sample.confidence.mean()), 2)}


def _design(sample: Sample, asm: Assembly, name: str, task: str, metrics: dict[str, Any],
            designed: np.ndarray, motif: np.ndarray | None = None) -> Design:
    return Design(
        name=name, chains=assemble(sample, asm, name), task=task, metrics=metrics, designed=designed.copy(),
        motif=None if motif is None else motif.copy(),
        confidence=None if sample.confidence is None else 100.0 * sample.confidence,
        trajectory=trajectory_chains(sample, asm, name),
    )


# --- unconditional co-design (optionally around a partial sequence) -------------------------------
def codesign(loaded: Any, solver_config: SolverConfig, lengths: int | str | Sequence[int] | None = None,
             num_samples: int = 1, *, partial_sequence: str | None = None, seed: int = 0, allow_long: bool = False,
             name: str = "codesign", **engine: Any) -> DesignSet:
    """Structure and sequence together for each length (``num_samples`` each), or around a partial sequence."""
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    if partial_sequence is not None:
        chain_lengths, tokens, fixed = parse_partial(partial_sequence)
        if lengths is not None and parse_lengths(lengths) != [len(tokens)]:
            raise ConfigError(f"lengths {lengths!r} disagree with the partial sequence of {len(tokens)} residues; "
                              "give one of them")
        layouts = [(chain_lengths, tokens, fixed)]
    elif lengths is None:
        raise ConfigError("give lengths (e.g. 100, [80, 100] or '70-150:10') or a partial sequence")
    else:
        layouts = [([n], np.full(max(n, 0), UNK_TOKEN), np.zeros(max(n, 0), bool)) for n in parse_lengths(lengths)]
    for chain_lengths, _, _ in layouts:
        check_length(sum(chain_lengths), "co-design", allow_long)
    problems, meta, counts = [], [], {}
    for chain_lengths, tokens, fixed in layouts:
        res, idx = chain_layout(chain_lengths)
        problem = make_problem(name, tokens, res, idx, np.zeros(len(tokens), bool), fixed, ~fixed)
        for _ in range(num_samples):
            k = counts[len(tokens)] = counts.get(len(tokens), -1) + 1
            problems.append(problem)
            meta.append((chain_lengths, f"{name}_{len(tokens)}_{k}"))

    def build(samples: list[Sample | None]) -> DesignSet:
        designs = []
        for problem, sample, (chain_lengths, design_name) in _finished(problems, samples, meta):
            metrics = {"length": problem.length, "score": round(sample.score, 4), **_confidence_metrics(sample)}
            asm = fresh_assembly(chain_lengths)
            designs.append(_design(sample, asm, design_name, "codesign", metrics, problem.designed))
        report = {"partial_sequence": partial_sequence, "lengths": sorted({p.length for p in problems})}
        return DesignSet("codesign", tuple(designs), report=report)

    return finish_problems(lambda: run_problems(loaded, solver_config, problems, seed=seed, **_common(engine)), build)


# --- forward folding --------------------------------------------------------------------------------
def fold(loaded: Any, solver_config: SolverConfig, sequences: str | Sequence[str] | Sequence[tuple[str, str]],
         num_samples: int = 1, *, seed: int = 0, allow_long: bool = False, **engine: Any) -> DesignSet:
    """Structures for fixed sequences (chains separated by '/' or ':'); the sequence is never changed."""
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    records = [sequences] if isinstance(sequences, str) else list(sequences)
    if not records:
        raise BadSequenceError("no sequences to fold")
    named = [(f"seq{i + 1}", r) if isinstance(r, str) else (safe_name(r[0]) or f"seq{i + 1}", r[1])
             for i, r in enumerate(records)]
    named = unique_names(named)
    problems, meta = [], []
    for name, seq in named:
        parts = split_chains(seq)
        tokens = np.concatenate([tokens_for(p, f"sequence {name!r}") for p in parts])
        check_length(len(tokens), f"sequence {name!r}", allow_long)
        res, idx = chain_layout([len(p) for p in parts])
        n = len(tokens)
        problem = make_problem(name, tokens, res, idx, np.zeros(n, bool), np.ones(n, bool), np.zeros(n, bool))
        for k in range(num_samples):
            problems.append(problem)
            meta.append(([len(p) for p in parts], name if num_samples == 1 else f"{name}_{k}"))

    def build(samples: list[Sample | None]) -> DesignSet:
        designs = []
        for problem, sample, (chain_lengths, name) in _finished(problems, samples, meta):
            metrics = {"length": problem.length, "score": round(sample.score, 4), **_confidence_metrics(sample)}
            designs.append(_design(sample, fresh_assembly(chain_lengths), name, "fold", metrics, problem.designed))
        has_conf = any(x is not None and x.confidence is not None for x in samples)
        report = {"confidence": "model confidence x 100 in the B-factor column" if has_conf else
                  "not available (the model has no confidence head): B-factors are 0 and mean_plddt is empty"}
        return DesignSet("fold", tuple(designs), report=report)

    return finish_problems(lambda: run_problems(loaded, solver_config, problems, seed=seed, **_common(engine)), build)


# --- inverse folding ----------------------------------------------------------------------------------
def inverse_fold(loaded: Any, solver_config: SolverConfig, chains: Sequence[ProteinChain], *,
                 chains_to_design: Any = None, fixed_residues: Any = None, redesigned_residues: Any = None,
                 bias_aa: Any = None, omit_aa: Any = None, bias_aa_per_residue: dict[str, Any] | None = None,
                 omit_aa_per_residue: dict[str, str] | None = None, number_of_batches: int = 1, batch_size: int = 1,
                 num_sequences: int | None = None, seed: int = 0, name: str | None = None, allow_long: bool = False,
                 **engine: Any) -> DesignSet:
    """Sequences for a fixed backbone; chains not designed stay as context (structure and sequence).

    ``number_of_batches`` x ``batch_size`` sequences, or exactly ``num_sequences`` in batches of
    ``batch_size`` (ProteinMPNN's ``--num_seq_per_target``; the last batch may be smaller).
    """
    chains = list(chains)
    if not chains:
        raise ConfigError("inverse folding needs at least one chain")
    if number_of_batches < 1 or batch_size < 1 or (num_sequences is not None and num_sequences < 1):
        raise ConfigError(f"number_of_batches, batch_size and num_sequences must be >= 1, got {number_of_batches}, "
                          f"{batch_size}, {num_sequences}")
    name = safe_name(name or chains[0].name) or "input"
    sel = select_inverse(chains, chains_to_design, fixed_residues, redesigned_residues)
    global_bias = parse_bias(bias_aa, omit_aa)  # [20] or None
    bias = residue_bias(chains, sel, global_bias, bias_aa_per_residue, omit_aa_per_residue)  # [20], [N, 20] or None
    present = [k for k in range(len(chains)) if sel.kept[k].any()]
    problem, asm = _inverse_problem(chains, sel, present, name, allow_long)
    aatype, designed = problem.example.aatype, problem.designed
    problems = [problem] * (num_sequences or number_of_batches * batch_size)
    native_known = designed & (aatype != UNK_TOKEN)

    def build(samples: list[Sample | None]) -> DesignSet:
        native_score = _native_score(loaded, problem, solver_config.min_t)
        designs = []
        for i, sample in enumerate(samples):
            if sample is None:
                continue
            rec = float((sample.aatype[native_known] == aatype[native_known]).mean()) if native_known.any() else None
            metrics = {"id": i + 1, "batch": i // batch_size + 1, "score": round(sample.score, 4),
                       "seq_rec": None if rec is None else round(rec, 4), "designed": int(designed.sum()),
                       **_confidence_metrics(sample)}
            designs.append(_design(sample, asm, f"{name}_{i + 1}", "inverse_fold", metrics, designed))
        native_chains = tuple(chains[k].select(sel.kept[k]) for k in present)
        native = Design(name=name, chains=native_chains, task="native", metrics={"score": round(native_score, 4)},
                        designed=designed.copy())
        biases = None if global_bias is None else {a: float(b) for a, b in zip(RESTYPES, global_bias) if b}
        report = {"target": name, **sel.report, "bias_AA": biases, "bias_AA_per_residue": bias_aa_per_residue,
                  "omit_AA_per_residue": omit_aa_per_residue}
        return DesignSet("inverse_fold", tuple(designs), native=native, report=report)

    return finish_problems(lambda: run_problems(loaded, solver_config, problems, seed=seed, bias=bias,
                                                batch_size=batch_size, **_common(engine)), build)


def _inverse_problem(chains: Sequence[ProteinChain], sel: InverseSelection, present: Sequence[int], name: str,
                     allow_long: bool) -> tuple[Problem, Assembly]:
    """The kept residues of the chains with any (whole structure fixed, designed residues sampled)."""
    pos = {k: np.flatnonzero(sel.kept[k]) for k in present}
    total = sum(len(p) for p in pos.values())
    check_length(total, f"structure {name}", allow_long)
    frames = [frames_from_chain(chains[k], pos[k]) for k in present]
    aatype = np.concatenate([chains[k].aatype[pos[k]] for k in present])
    designed = np.concatenate([sel.designed[k][pos[k]] for k in present])
    res = np.concatenate([model_residue_index(chains[k], pos[k]) for k in present])
    idx = np.concatenate([np.full(len(pos[k]), j) for j, k in enumerate(present)])
    trans, rots = np.concatenate([f[0] for f in frames]), np.concatenate([f[1] for f in frames])
    problem = make_problem(name, aatype, res, idx, np.ones(total, bool), ~designed, designed, trans, rots)
    asm = Assembly(
        chain_ids=tuple(chains[k].chain_id for k in present), chain_index=idx,
        residue_index=np.concatenate([chains[k].residue_index[pos[k]] for k in present]),
        insertion_code=np.concatenate([chains[k].insertion_code[pos[k]] for k in present]),
        source=tuple((chains[k], int(p)) for k in present for p in pos[k]), full_atoms=~designed,
        shift=trans.mean(0),
    )
    return problem, asm


def _native_score(loaded: Any, problem: Problem, min_t: float) -> float:
    device = model_device(loaded)
    batch = collate([problem.example]).to(device)
    designed = torch.from_numpy(problem.designed)[None].to(device)
    cond = Conditioning.from_batch(batch, batch.res_mask, ~designed)
    state = FlowState(cond.trans_1, cond.rots_1, cond.aatype_1)
    return float(sequence_nll(loaded.model, state, designed, batch.res_mask, batch.residue_index,
                              batch.chain_index, min_t)[0])


# --- motif scaffolding -------------------------------------------------------------------------------
def scaffold(loaded: Any, solver_config: SolverConfig, chains: Sequence[ProteinChain], contigs: str | Sequence[str],
             num_designs: int = 1, *, keep_motif_sequence: bool = False, length: Any = None, seed: int = 0,
             allow_long: bool = False, name: str | None = None, **engine: Any) -> DesignSet:
    """Scaffolds around input motifs laid out by an RFdiffusion contig string; motif structure held exactly."""
    if num_designs < 1:
        raise ConfigError(f"num_designs must be >= 1, got {num_designs}")
    chains = list(chains)
    name = safe_name(name or (chains[0].name if chains else "")) or "scaffold"
    spec = parse_contigs(contigs)
    motifs = resolve_motifs(spec, chains)
    seen: dict[str, str] = {}
    for text, refs in motifs.items():
        for r in refs:
            if seen.setdefault(r.label, text) != text:
                raise ConfigError(f"contig segments {seen[r.label]} and {text} both take residue {r.label}")
    rng = np.random.default_rng(seed)
    layouts = [sample_layout(spec, motifs, rng, parse_length_range(length)) for _ in range(num_designs)]
    for layout in layouts:
        check_length(layout.length, f"contig {spec.text!r}", allow_long)
    built = [_scaffold_problem(layout, chains, keep_motif_sequence, name) for layout in layouts]

    def build(samples: list[Sample | None]) -> DesignSet:
        designs = []
        for d, (layout, (problem, asm), sample) in enumerate(zip(layouts, built, samples)):
            if sample is None:
                continue
            motif = problem.fixed_structure
            ca_rmsd, bb_rmsd = motif_rmsd(sample, asm, motif)
            metrics = {"length": layout.length, "contig": layout.describe(), "motif_ca_rmsd": round(ca_rmsd, 4),
                       "motif_bb_rmsd": round(bb_rmsd, 4), "score": round(sample.score, 4),
                       **_confidence_metrics(sample)}
            designs.append(_design(sample, asm, f"{name}_{d}", "scaffold", metrics, problem.designed, motif))
        return DesignSet("scaffold", tuple(designs), report=report)

    report = {"target": name, "contigs": spec.text,
              "motif_residues": {k: [r.label for r in v] for k, v in motifs.items()},
              "keep_motif_sequence": keep_motif_sequence,
              "motif_rmsd": "model backbone (frames -> N, CA, C) vs the input motif after superposition on the "
                            "motif; the written PDB carries the input's own motif atoms"}
    return finish_problems(lambda: run_problems(loaded, solver_config, [b[0] for b in built], seed=seed,
                                                **_common(engine)), build)


def _scaffold_problem(layout: ContigLayout, chains: Sequence[ProteinChain], keep_seq: bool,
                      name: str) -> tuple[Problem, Assembly]:
    aatype, fixed_s, fixed_a, source = [], [], [], []
    trans, rots = [], []
    lengths = []
    for segments in layout.chains:
        lengths.append(0)
        for seg in segments:
            if isinstance(seg, int):
                aatype += [UNK_TOKEN] * seg
                fixed_s += [False] * seg
                fixed_a += [False] * seg
                source += [None] * seg
                trans.append(np.zeros((seg, 3), np.float32))
                rots.append(np.broadcast_to(np.eye(3, dtype=np.float32), (seg, 3, 3)))
                lengths[-1] += seg
                continue
            for r in seg:
                chain = chains[r.chain]
                aa = int(chain.aatype[r.position])
                aatype.append(aa if keep_seq else UNK_TOKEN)
                fixed_s.append(True)
                fixed_a.append(keep_seq and aa != UNK_TOKEN)
                source.append((chain, r.position))
            ca, rot = zip(*(frames_from_chain(chains[r.chain], [r.position]) for r in seg))
            trans.append(np.concatenate(ca))
            rots.append(np.concatenate(rot))
            lengths[-1] += len(seg)
    res, idx = chain_layout(lengths)
    fixed_s, fixed_a = np.array(fixed_s), np.array(fixed_a)
    trans_all = np.concatenate(trans)
    problem = make_problem(name, np.array(aatype), res, idx, fixed_s, fixed_a, ~fixed_a, trans_all,
                           np.concatenate(rots))
    asm = replace(fresh_assembly(lengths), source=tuple(source), full_atoms=fixed_a,
                  shift=trans_all[fixed_s].mean(0))
    return problem, asm


def motif_rmsd(sample: Sample, asm: Assembly, motif: np.ndarray) -> tuple[float, float]:
    """CA and backbone (N, CA, C) RMSD, Å, of the sampled motif residues to the input after superposition."""
    idx = np.flatnonzero(motif)
    target = np.stack([asm.source[i][0].atom_positions[asm.source[i][1]][[N_IDX, CA_IDX, C_IDX]] for i in idx])
    mobile = sample.backbone[idx][:, :3]  # N, CA, C
    t, m = torch.from_numpy(target).double(), torch.from_numpy(mobile).double()
    ca = float(aligned_rmsd(m[:, 1], t[:, 1]))
    bb = float(aligned_rmsd(m.reshape(-1, 3), t.reshape(-1, 3)))
    return ca, bb
