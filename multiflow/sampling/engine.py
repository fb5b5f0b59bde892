"""The sampling engine behind every design task: problems -> batched joint Euler sampling -> samples.

A :class:`Problem` says what one design fixes and to which values; :func:`run_problems` packs
problems into batches of at most ``max_tokens`` = B × N_max residues (and ``batch_size``), runs
the solver once per batch with a model wrapped by :class:`GuidedModel` (logit bias/omit, the
per-residue "given" flags), and returns one :class:`Sample` per problem. See assembly.py for the
coordinate convention and tasks.py for the definition of ``score``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiflow.constants import MASK_TOKEN, NUM_AA, UNK_TOKEN
from multiflow.data.batch import ChainExample, collate
from multiflow.errors import PARTIAL_RUN_STOPS, ConfigError, SamplingFailed, SamplingInterrupted, Terminated
from multiflow.flows.euclidean import from_flow_units
from multiflow.geometry.backbone import frames_to_backbone
from multiflow.geometry.rigid import Rigid
from multiflow.sampling.solver import Conditioning, EulerSolver, FlowState, Prediction, SolverConfig

BatchCallback = Callable[[int, int], None]  # (batches done, batches in total)


@dataclass(frozen=True)
class Problem:
    """One design to sample: the inputs (zeros/identity/X where free) and what is held fixed."""

    example: ChainExample  # aatype (chain alphabet), trans Å, rots, residue/chain index
    fixed_structure: np.ndarray  # [N] bool
    fixed_sequence: np.ndarray  # [N] bool
    designed: np.ndarray  # [N] bool, sampled amino acids (bias/omit apply, score counts)

    @property
    def length(self) -> int:
        return self.example.length


@dataclass(frozen=True)
class Sample:
    """The solver's result for one Problem, in the solver's (centred) frame."""

    backbone: np.ndarray  # [N, 4, 3] Å, N, CA, C, O from the final frames
    aatype: np.ndarray  # [N] int64 chain alphabet (20 = X only where fixed and unknown)
    confidence: np.ndarray | None  # [N] in [0, 1]
    score: float  # nats, see the module docstring
    trajectory: list[np.ndarray] | None  # per saved step [N, 4, 3] Å


# --- the engine ----------------------------------------------------------------------------------
class GuidedModel:
    """A flow model whose amino-acid logits get ``bias`` ([20], or [N, 20] per residue) added at
    ``where`` [B, N] (−inf omits).

    Also keeps the confidence of the latest forward pass when the model reports one. The model sees
    what is given per residue (``extras["conditioning"]``'s fixed masks) exactly as without the wrapper.
    """

    def __init__(self, model: Any, bias: Tensor | None = None, where: Tensor | None = None) -> None:
        self.model, self.bias, self.where = model, bias, where
        self.confidence: Tensor | None = None

    def __call__(self, state: FlowState, t: dict[str, Tensor], **extras: Any) -> Prediction:
        pred = self.model(state, t, **extras)
        self.confidence = pred.confidence
        if self.bias is None:
            return pred
        logits = pred.logits[..., :NUM_AA]
        biased = logits + self.bias.to(logits.dtype)
        return replace(pred, logits=torch.where(self.where[..., None], biased, logits))


def plan_batches(lengths: Sequence[int], max_tokens: int, batch_size: int | None = None) -> list[list[int]]:
    """Consecutive groups of problem indices with B × max(N) <= max_tokens (a longer one runs alone)."""
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    groups: list[list[int]] = []
    longest = 0
    for i, n in enumerate(lengths):
        cap = batch_size or len(lengths)
        if groups and len(groups[-1]) < cap and (len(groups[-1]) + 1) * max(longest, n) <= max_tokens:
            groups[-1].append(i)
            longest = max(longest, n)
        else:
            groups.append([i])
            longest = n
    return groups


def model_device(loaded: Any) -> torch.device:
    return next(loaded.model.parameters()).device


def run_problems(loaded: Any, solver_config: SolverConfig, problems: Sequence[Problem], *, seed: int,
                 max_tokens: int = 4000, batch_size: int | None = None, bias: np.ndarray | None = None,
                 save_trajectory: bool = False, trajectory_stride: int = 1,
                 on_batch: BatchCallback | None = None) -> list[Sample]:
    """Sample every problem; results in input order."""
    device = model_device(loaded)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    it = loaded.interpolant
    solver = EulerSolver(it.trans_flow, it.rots_flow, it.seq_flow, solver_config,
                         model_t_range=(it.config.min_t, 1.0 - it.config.min_t))
    groups = plan_batches([p.length for p in problems], max_tokens, batch_size)
    out: list[Sample | None] = [None] * len(problems)
    if bias is not None and np.ndim(bias) == 2 and any(p.length != len(bias) for p in problems):
        raise ConfigError(f"a per-residue bias [{len(bias)}, 20] needs problems of that length")
    bias_t = None if bias is None else torch.as_tensor(bias, dtype=torch.float32, device=device)
    done = 0
    try:
        for k, group in enumerate(groups):
            chunk = [problems[i] for i in group]
            for i, sample in zip(group, _run_batch(loaded, solver, chunk, generator, bias_t, save_trajectory,
                                                   max(1, trajectory_stride))):
                out[i] = sample
            done += len(group)
            if on_batch is not None:
                on_batch(k + 1, len(groups))
    except KeyboardInterrupt as err:
        if done == 0:
            raise
        reason = str(err) if isinstance(err, Terminated) else "interrupted"
        raise SamplingInterrupted(reason, done, len(problems), samples=out) from err
    except Exception as err:
        if done == 0:
            raise
        raise SamplingFailed(f"{type(err).__name__}: {err}", done, len(problems), samples=out) from err
    return out  # type: ignore[return-value]


def finish_problems(run: Callable[[], list[Sample]], build: Callable[[list[Sample | None]], Any]) -> Any:
    """``build(run())``. When the run stops part-way, ``build`` gets the finished samples (``None``
    for the others) and the :class:`SamplingInterrupted` / :class:`SamplingFailed` from
    :func:`run_problems` is raised again, now carrying that result."""
    try:
        samples = run()
    except PARTIAL_RUN_STOPS as stop:
        if stop.samples is not None and stop.result is None:
            try:
                stop.result = build(stop.samples)
            except Exception as err:  # noqa: BLE001  (the stop, not this, is the error to report)
                logging.getLogger(__name__).warning("the %d finished designs could not be assembled: %s",
                                                    stop.done, err)
        raise
    return build(samples)


def _pad(arrays: Sequence[np.ndarray], n: int, device: torch.device) -> Tensor:
    out = torch.zeros(len(arrays), n, dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=bool))
    return out.to(device)


def _run_batch(loaded: Any, solver: EulerSolver, chunk: Sequence[Problem], generator: torch.Generator,
               bias: Tensor | None, save_trajectory: bool, stride: int) -> list[Sample]:
    device = model_device(loaded)
    batch = collate([p.example for p in chunk]).to(device)
    n = batch.num_res
    fixed_s = _pad([p.fixed_structure for p in chunk], n, device)
    fixed_a = _pad([p.fixed_sequence for p in chunk], n, device)
    designed = _pad([p.designed for p in chunk], n, device) & batch.res_mask
    cond = Conditioning.from_batch(batch, fixed_s, fixed_a)
    model = GuidedModel(loaded.model, bias, designed)
    with torch.inference_mode():
        res = solver.sample(model, batch.res_mask, generator=generator, return_trajectory=save_trajectory,
                            conditioning=cond, residue_index=batch.residue_index, chain_index=batch.chain_index)
        confidence = model.confidence
        scored = torch.where(designed.any(-1, keepdim=True), designed, batch.res_mask)
        scores = sequence_nll(loaded.model, res.final, scored, batch.res_mask, batch.residue_index,
                              batch.chain_index, solver.config.min_t)
        backbone = _backbone(res.final, batch.res_mask)
        frames = None
        if save_trajectory:
            frames = [_backbone(s, batch.res_mask) for s in res.states[::stride]]
            if (len(res.states) - 1) % stride:
                frames.append(backbone)
    samples = []
    for b, p in enumerate(chunk):
        m = p.length
        tokens = res.final.aatype[b, :m].cpu().numpy().copy()
        tokens[tokens >= NUM_AA] = UNK_TOKEN  # MASK left only where fixed and unknown
        samples.append(Sample(
            backbone=backbone[b, :m].cpu().numpy(), aatype=tokens,
            confidence=None if confidence is None else confidence[b, :m].float().cpu().numpy(),
            score=float(scores[b]),
            trajectory=None if frames is None else [f[b, :m].cpu().numpy() for f in frames],
        ))
    return samples


def _backbone(state: FlowState, mask: Tensor) -> Tensor:
    rigid = Rigid(state.rots.float(), from_flow_units(state.trans).float())
    return frames_to_backbone(rigid, mask)  # [B, N, 4, 3] Å


def sequence_nll(model: Any, state: FlowState, scored: Tensor, res_mask: Tensor, residue_index: Tensor,
                 chain_index: Tensor, min_t: float) -> Tensor:
    """[B] mean NLL (nats) of ``state.aatype`` at ``scored`` positions, those masked, structure at t=1.

    The model is told the structure is given everywhere and the sequence everywhere but ``scored``.
    """
    b = res_mask.shape[0]
    tokens = torch.where(scored, torch.full_like(state.aatype, MASK_TOKEN), state.aatype)
    one = torch.ones(b, device=res_mask.device)
    t = {"trans": one, "rots": one, "aa": torch.full_like(one, max(min_t, 1e-3))}
    with torch.inference_mode():
        pred = model(FlowState(state.trans, state.rots, tokens), t, res_mask=res_mask,
                     residue_index=residue_index, chain_index=chain_index, fixed_structure=res_mask.clone(),
                     fixed_sequence=res_mask & ~scored & (state.aatype < NUM_AA))
    logp = torch.log_softmax(pred.logits[..., :NUM_AA].float(), dim=-1)
    target = state.aatype.clamp(max=NUM_AA - 1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    valid = scored & res_mask & (state.aatype < NUM_AA)
    return (nll * valid).sum(-1) / valid.sum(-1).clamp(min=1)
