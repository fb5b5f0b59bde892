"""Training-time corruption of a Batch: per-modality times, a task mixture, fixed residues.

Each sample of a batch draws a task:
  CODESIGN         one t for all modalities (or, with ``separate_t_prob``, one t per modality)
  INVERSE_FOLDING  structure at t = 1 (all residues ``fixed_structure``), the sequence noised
  FORWARD_FOLDING  sequence at t = 1 (all residues ``fixed_sequence``), the structure noised
  PARTIAL          a random subset of residues (contiguous motif segments or scattered positions)
                   keeps its structure and/or sequence at the data; the rest is noised like CODESIGN.
Fixed residues carry exactly their data values; times are per sample [B] and describe the free
residues (a modality whose residues are all fixed gets t = 1).

Centring convention (translations, in nm = Å / TRANS_SCALE): the data are centred on the centre
of mass of the residues with fixed structure when a sample has any (the motif sits at the origin;
the same convention the sampler's ``Conditioning`` uses), otherwise on all residues of
``res_mask``. The prior noise is centred over the free residues, so without a motif the noisy
positions are centred too; fixed residues never move. Tokens at positions with unknown identity
(``seq_mask`` False) stay MASK at every t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import torch
from torch import Tensor

from multiflow.constants import MASK_TOKEN, NUM_AA
from multiflow.data.batch import Batch
from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.euclidean import EuclideanFlow, centre, to_flow_units
from multiflow.flows.so3 import SO3Flow


class Task(IntEnum):
    """Task label of one training sample (stored in ``NoisyBatch.task`` as int64)."""

    CODESIGN = 0
    INVERSE_FOLDING = 1
    FORWARD_FOLDING = 2
    PARTIAL = 3


@dataclass(frozen=True)
class TaskMixture:
    """Unnormalised probabilities of the tasks (normalised on use; at least one must be > 0)."""

    codesign: float = 1.0
    inverse_folding: float = 0.0
    forward_folding: float = 0.0
    partial: float = 0.0

    def __post_init__(self) -> None:
        w = self.weights()
        if bool((w < 0).any()) or not bool(torch.isfinite(w).all()) or float(w.sum()) <= 0:
            raise ConfigError(f"task mixture weights must be finite, >= 0 and not all 0, got {w.tolist()}")

    def weights(self) -> Tensor:
        return torch.tensor([self.codesign, self.inverse_folding, self.forward_folding, self.partial],
                            dtype=torch.float64)

    def probabilities(self) -> Tensor:
        """[4] float64 in ``Task`` order, summing to 1."""
        w = self.weights()
        return w / w.sum()


@dataclass(frozen=True)
class PartialConfig:
    """How the fixed subset of a PARTIAL sample is drawn.

    fraction: the subset holds round(f · M) of the M residues, f ~ U(min_fraction, max_fraction),
    clamped to 1..M-1. With probability ``contiguous_prob`` it is 1..max_segments contiguous
    segments (over the present residues, in chain order), else scattered random positions.
    What is fixed on the subset: both modalities / structure only / sequence only with the
    (unnormalised) weights ``fix_weights``.
    """

    min_fraction: float = 0.05
    max_fraction: float = 0.5
    max_segments: int = 3
    contiguous_prob: float = 0.5
    fix_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)  # (both, structure only, sequence only)

    def __post_init__(self) -> None:
        if not 0 <= self.min_fraction <= self.max_fraction <= 1:
            raise ConfigError(f"need 0 <= min_fraction <= max_fraction <= 1, got {self.min_fraction}, "
                              f"{self.max_fraction}")
        if self.max_segments < 1 or not 0 <= self.contiguous_prob <= 1:
            raise ConfigError(f"max_segments must be >= 1 and contiguous_prob in [0, 1], got "
                              f"{self.max_segments}, {self.contiguous_prob}")
        if len(self.fix_weights) != 3 or min(self.fix_weights) < 0 or sum(self.fix_weights) <= 0:
            raise ConfigError(f"fix_weights must be 3 non-negative numbers, not all 0, got {self.fix_weights}")


@dataclass(frozen=True)
class InterpolantConfig:
    min_t: float = 0.01  # times are drawn from U(min_t, 1 - min_t): away from both singular ends
    mixture: TaskMixture = field(default_factory=TaskMixture)
    partial: PartialConfig = field(default_factory=PartialConfig)
    separate_t_prob: float = 0.0  # CODESIGN/PARTIAL: probability of an independent t per modality

    def __post_init__(self) -> None:
        if not 0 <= self.min_t < 0.5:
            raise ConfigError(f"min_t must lie in [0, 0.5), got {self.min_t}")
        if not 0 <= self.separate_t_prob <= 1:
            raise ConfigError(f"separate_t_prob must lie in [0, 1], got {self.separate_t_prob}")


@dataclass(frozen=True)
class NoisyBatch:
    """A corrupted batch. Translations in nm (Å / TRANS_SCALE), centred as in the module docstring."""

    trans_t: Tensor  # [B, N, 3] nm, noisy CA positions
    rots_t: Tensor  # [B, N, 3, 3] noisy rotations
    aatype_t: Tensor  # [B, N] int64 noisy tokens, 0..19 or MASK (20)
    t_trans: Tensor  # [B] time of the translations (0 noise .. 1 data)
    t_rots: Tensor  # [B] time of the rotations
    t_aa: Tensor  # [B] time of the sequence
    fixed_structure: Tensor  # [B, N] bool, frame held at the data (subset of res_mask)
    fixed_sequence: Tensor  # [B, N] bool, token held at the data (subset of res_mask)
    trans_1: Tensor  # [B, N, 3] nm, clean CA positions (centred)
    rots_1: Tensor  # [B, N, 3, 3] clean rotations
    aatype_1: Tensor  # [B, N] int64 clean tokens (MASK where unknown or padding)
    res_mask: Tensor  # [B, N] bool
    seq_mask: Tensor  # [B, N] bool, identity known
    residue_index: Tensor  # [B, N] int64
    chain_index: Tensor  # [B, N] int64
    task: Tensor  # [B] int64, a ``Task`` value

    @property
    def free_structure(self) -> Tensor:
        """[B, N] bool: residues whose frames are noised (structure losses apply here)."""
        return self.res_mask & ~self.fixed_structure

    @property
    def free_sequence(self) -> Tensor:
        """[B, N] bool: residues whose tokens are noised and known (token losses apply here)."""
        return self.seq_mask & ~self.fixed_sequence


def centre_targets(trans_nm: Tensor, res_mask: Tensor, fixed_structure: Tensor) -> Tensor:
    """The centring convention: [B, N, 3] centred on the fixed residues' COM if any, else on res_mask."""
    fixed = fixed_structure & res_mask
    has_motif = fixed.any(-1, keepdim=True)  # [B, 1]
    return centre(trans_nm, res_mask, reference=torch.where(has_motif, fixed, res_mask))


class Interpolant:
    """Draws tasks, times and fixed masks and corrupts a :class:`Batch` into a :class:`NoisyBatch`."""

    def __init__(self, config: InterpolantConfig | None = None, trans_flow: EuclideanFlow | None = None,
                 rots_flow: SO3Flow | None = None, seq_flow: DiscreteFlow | None = None) -> None:
        self.config = config if config is not None else InterpolantConfig()
        self.trans_flow = trans_flow if trans_flow is not None else EuclideanFlow()
        self.rots_flow = rots_flow if rots_flow is not None else SO3Flow()
        self.seq_flow = seq_flow if seq_flow is not None else DiscreteFlow(NUM_AA, "mask")
        if self.seq_flow.vocab_size != NUM_AA:
            raise ConfigError(f"the sequence flow must have vocab_size {NUM_AA}, got {self.seq_flow.vocab_size}")

    # --- random choices -----------------------------------------------------------------
    def sample_tasks(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """[B] int64 task labels drawn from the mixture."""
        probs = self.config.mixture.probabilities()
        return torch.multinomial(probs, batch_size, replacement=True, generator=generator)

    def sample_times(self, task: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(t_trans, t_rots, t_aa) [B] float32 for the given tasks (1 for a fully fixed modality)."""
        b, lo = task.shape[0], self.config.min_t
        draw = lambda: lo + (1 - 2 * lo) * torch.rand(b, generator=generator)  # noqa: E731
        shared, own_rots, own_aa = draw(), draw(), draw()
        separate = torch.rand(b, generator=generator) < self.config.separate_t_prob
        t_trans = shared
        t_rots = torch.where(separate, own_rots, shared)
        t_seq = torch.where(separate, own_aa, shared)
        one = torch.ones(b)
        inverse = (task == Task.INVERSE_FOLDING).cpu()
        forward = (task == Task.FORWARD_FOLDING).cpu()
        t_trans = torch.where(inverse, one, t_trans)
        t_rots = torch.where(inverse, one, t_rots)
        t_seq = torch.where(forward, one, t_seq)
        return t_trans, t_rots, t_seq

    def sample_fixed_masks(self, task: Tensor, res_mask: Tensor,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(fixed_structure, fixed_sequence) [B, N] bool, subsets of ``res_mask``, for the given tasks."""
        fixed_structure = res_mask & (task == Task.INVERSE_FOLDING)[:, None]
        fixed_sequence = res_mask & (task == Task.FORWARD_FOLDING)[:, None]
        cfg = self.config.partial
        fix_probs = torch.tensor(cfg.fix_weights, dtype=torch.float64)
        for i in torch.nonzero(task == Task.PARTIAL).flatten().tolist():
            subset = self._partial_subset(res_mask[i], generator)
            what = int(torch.multinomial(fix_probs, 1, generator=generator))  # 0 both, 1 structure, 2 sequence
            if what in (0, 1):
                fixed_structure[i] |= subset
            if what in (0, 2):
                fixed_sequence[i] |= subset
        return fixed_structure, fixed_sequence

    def _partial_subset(self, row_mask: Tensor, generator: torch.Generator | None) -> Tensor:
        """[N] bool subset of the present residues of one sample (see :class:`PartialConfig`)."""
        cfg = self.config.partial
        present = torch.nonzero(row_mask.cpu()).flatten()  # chain-ordered indices of present residues
        m = present.numel()
        subset = torch.zeros(row_mask.shape, dtype=torch.bool)
        if m < 2:
            return subset.to(row_mask.device)
        frac = cfg.min_fraction + (cfg.max_fraction - cfg.min_fraction) * float(torch.rand(1, generator=generator))
        k = min(max(round(frac * m), 1), m - 1)
        if float(torch.rand(1, generator=generator)) < cfg.contiguous_prob:
            n_seg = int(torch.randint(1, min(cfg.max_segments, k) + 1, (1,), generator=generator))
            cuts = (torch.randperm(k - 1, generator=generator)[: n_seg - 1] + 1).sort().values.tolist()
            lengths = [b - a for a, b in zip([0, *cuts], [*cuts, k])]  # a random composition of k
            # Stars and bars: n_seg blocks among the m - k free residues -> block j starts after
            # `gaps[j]` free residues, so blocks never overlap (adjacent ones merge).
            gaps = (torch.randperm(m - k + 1, generator=generator)[:n_seg]).sort().values.tolist()
            start = 0
            chosen: list[int] = []
            for j, length in enumerate(lengths):
                begin = gaps[j] + start
                chosen.extend(range(begin, begin + length))
                start += length
            picked = present[torch.tensor(chosen)]
        else:
            picked = present[torch.randperm(m, generator=generator)[:k]]
        subset[picked] = True
        return subset.to(row_mask.device)

    # --- corruption ---------------------------------------------------------------------
    def corrupt(self, batch: Batch, generator: torch.Generator | None = None) -> NoisyBatch:
        """Noise every modality of ``batch`` at its own time; fixed residues keep their data values."""
        b = batch.batch_size
        res_mask, seq_mask = batch.res_mask, batch.seq_mask
        task = self.sample_tasks(b, generator).to(batch.device)
        t_trans, t_rots, t_aa = (t.to(batch.device) for t in self.sample_times(task.cpu(), generator))
        fixed_structure, fixed_sequence = self.sample_fixed_masks(task, res_mask, generator)
        free = res_mask & ~fixed_structure

        trans_1 = centre_targets(to_flow_units(batch.trans), res_mask, fixed_structure)
        trans_0 = self.trans_flow.sample_prior(free, generator, dtype=trans_1.dtype)
        trans_0 = self.trans_flow.pair(trans_0, trans_1, res_mask, eligible=~fixed_structure.any(-1))
        trans_t = self.trans_flow.sample_path(trans_0, trans_1, t_trans)
        trans_t = torch.where(fixed_structure[..., None], trans_1, trans_t) * res_mask[..., None]

        rots_1 = batch.rots
        rots_0 = self.rots_flow.sample_prior(free, generator, dtype=rots_1.dtype)
        rots_t = self.rots_flow.sample_path(rots_0, rots_1, t_rots)
        rots_t = torch.where(free[..., None, None], rots_t, rots_1)

        aatype_1 = torch.where(seq_mask, batch.aatype, torch.full_like(batch.aatype, MASK_TOKEN))
        safe = torch.where(seq_mask, aatype_1, torch.zeros_like(aatype_1))
        aatype_t = self.seq_flow.sample_path(safe, t_aa, generator)
        aatype_t = torch.where(seq_mask, aatype_t, torch.full_like(aatype_t, MASK_TOKEN))
        aatype_t = torch.where(fixed_sequence, aatype_1, aatype_t)
        return NoisyBatch(
            trans_t=trans_t, rots_t=rots_t, aatype_t=aatype_t, t_trans=t_trans, t_rots=t_rots, t_aa=t_aa,
            fixed_structure=fixed_structure, fixed_sequence=fixed_sequence, trans_1=trans_1, rots_1=rots_1,
            aatype_1=aatype_1, res_mask=res_mask, seq_mask=seq_mask, residue_index=batch.residue_index,
            chain_index=batch.chain_index, task=task,
        )
