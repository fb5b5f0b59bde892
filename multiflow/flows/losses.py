"""Pure loss functions. Each returns a dict of named scalar terms (``"loss"`` is the one to optimise).

Token (discrete flow) terms follow ../shared/MATH.md: cross-entropy of the predicted posterior
p_theta(a_1 | x_t) against the data token, over the positions that carry information (masking
noise: masked positions only; uniform noise: every position), optionally weighted by the
masked-diffusion (MDLM) ELBO weight d_kappa_t / (1 - kappa_t) (= 1/(1 - t) for kappa_t = t).

Held-out likelihood bounds (``masked_nelbo``, ``uniform_nelbo``; ``token_nelbo`` picks one by the
flow's noise) share one derivation. With c_t = d_kappa_t / (1 - kappa_t) and p̂ = p_theta(. | x_t),
the model CTMC jumps position i from x_t^i to y != x_t^i at rate û = c_t p̂_i(y) (eta = 0; under
masking only a MASK position moves), and the conditional process that ends at x1 jumps to x1^i at
rate u = c_t 1[x_t^i != x1^i]; both start from the prior. The path-measure KL bounds the NLL:
  -log p_theta(x1) <= int_0^1 E_{x_t ~ p_t(.|x1)} sum_i sum_{y != x_t^i} [û - u + u log(u/û)] dt,
and the inner sum per position is c_t times
  x_t^i != x1^i: -log p̂_i(x1^i) - p̂_i(x_t^i)      (p̂(MASK) = 0: masking gives -log p̂_i(x1^i))
  x_t^i == x1^i: 1 - p̂_i(x1^i) (uniform noise);  0 (masking: a revealed token never moves).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from multiflow.constants import TRANS_SCALE
from multiflow.errors import ConfigError
from multiflow.flows.base import jump_coefficient
from multiflow.flows.discrete import DiscreteFlow
from multiflow.geometry import so3
from multiflow.geometry.backbone import frames_to_backbone
from multiflow.geometry.contacts import CA_MIN_DISTANCE, ca_overlaps
from multiflow.geometry.lddt import lddt_ca
from multiflow.geometry.rigid import Rigid

if TYPE_CHECKING:
    from multiflow.flows.interpolant import NoisyBatch


def _data_log_probs(logits: Tensor, shape: torch.Size, vocab_size: int, dtype: torch.dtype) -> Tensor:
    """log softmax over the S data tokens, [B, N, S] in ``dtype``; a MASK column (index S) is dropped."""
    if logits.shape[-1] == vocab_size + 1:
        logits = logits[..., :vocab_size]  # MASK never carries mass
    elif logits.shape[-1] != vocab_size:
        raise ValueError(f"logits last dim must be S={vocab_size} (or S+1), got {logits.shape[-1]}")
    if logits.shape[:2] != shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match the tokens {tuple(shape)}")
    return torch.log_softmax(logits.to(dtype), dim=-1)


def _token_cross_entropy(logits: Tensor, x1: Tensor, counted: Tensor, vocab_size: int) -> Tensor:
    """-log softmax(logits)[x1] over the S data tokens, [B, N]; zero where not ``counted``."""
    logp = _data_log_probs(logits, x1.shape, vocab_size, torch.float32)  # [B, N, S]
    bad = counted & ((x1 < 0) | (x1 >= vocab_size))
    if bad.any():
        raise ValueError(f"x1 has tokens outside 0..{vocab_size - 1} at counted positions "
                         f"(e.g. {int(x1[bad][0])}); exclude them with the mask")
    target = torch.where(counted, x1, torch.zeros_like(x1))
    logp = logp.gather(-1, target[..., None]).squeeze(-1)  # [B, N]
    return torch.where(counted, -logp, torch.zeros_like(logp))


def _loss_positions(flow: DiscreteFlow, x_t: Tensor, mask: Tensor, fixed_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(generated, counted) [B, N] bool: valid non-fixed positions, and those that carry information
    (the masked ones for masking noise, all generated ones for uniform noise)."""
    generated = mask.bool() if fixed_mask is None else mask.bool() & ~fixed_mask.bool()
    counted = generated & (x_t == flow.mask_token) if flow.noise == "mask" else generated
    return generated, counted


def token_loss(flow: DiscreteFlow, logits: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, mask: Tensor, *,
               fixed_mask: Tensor | None = None, likelihood_weighting: bool = False,
               max_weight: float | None = 10.0) -> dict[str, Tensor]:
    """Cross-entropy of ``logits [B, N, S]`` against ``x1 [B, N]`` given the noisy ``x_t [B, N]`` at ``t [B]``.

    ``mask [B, N]`` bool marks valid positions (padding/unknown residues False); ``fixed_mask``
    marks conditioned positions (not generated, no loss). Terms:
      ``loss``: sum over counted positions of w(t) * CE, divided by the number of valid non-fixed
        positions (summed over the batch). With ``likelihood_weighting`` and masking noise,
        w = d_kappa/(1 - kappa) and this is the NELBO per token (nats); ``max_weight`` clips w
        (None: no clip; 10 = the t <= 0.9 convention for kappa = t). Without it w = 1. For
        uniform noise the weight is only a heuristic, not an ELBO.
      ``ce``: mean CE over counted positions (unweighted; a diagnostic).
      ``num_counted``: how many positions carried information.
    """
    generated, counted = _loss_positions(flow, x_t, mask, fixed_mask)
    ce = _token_cross_entropy(logits, x1, counted, flow.vocab_size)  # [B, N]
    if likelihood_weighting:
        w = jump_coefficient(flow.scheduler, t.float(), min_denominator=1e-6)
        if max_weight is not None:
            w = w.clamp_max(max_weight)
    else:
        w = torch.ones_like(t, dtype=torch.float32)
    n_counted = counted.sum()
    return {
        "loss": (w[:, None] * ce).sum() / generated.sum().clamp_min(1),
        "ce": ce.sum() / n_counted.clamp_min(1),
        "num_counted": n_counted.float(),
    }


def distill_token_loss(flow: DiscreteFlow, logits: Tensor, target: Tensor, x_t: Tensor, mask: Tensor, *,
                       fixed_mask: Tensor | None = None) -> dict[str, Tensor]:
    """KL(teacher || model) of the amino-acid distribution at the positions :func:`token_loss` counts.

    ``target [B, N, S]``: a teacher's probabilities per residue (rows renormalised here); a row of
    zeros (padding, a chain without a target) is skipped. Same positions as ``token_loss`` without
    weighting, normalised by the valid non-fixed positions that have a target, so ``aa`` and
    ``aa_distill`` are on one scale. The teacher's entropy is subtracted, so a model that matches the teacher scores 0.
    Returns ``aa_distill``.
    """
    if target.shape != (*x_t.shape, flow.vocab_size):
        raise ValueError(f"target must be [B, N, {flow.vocab_size}] for tokens {tuple(x_t.shape)}, got {tuple(target.shape)}")
    p = target.float().clamp_min(0)
    generated, counted = _loss_positions(flow, x_t, mask.bool() & (p.sum(-1) > 0), fixed_mask)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    logq = _data_log_probs(logits, x_t.shape, flow.vocab_size, torch.float32)
    kl = (p * (torch.log(p.clamp_min(1e-12)) - logq)).sum(-1)  # [B, N]
    kl = torch.where(counted, kl, torch.zeros_like(kl))
    return {"aa_distill": kl.sum() / generated.sum().clamp_min(1)}


NelboFn = Callable[[Tensor, Tensor], Tensor]  # logits_fn(x_t [B, N], t [B]) -> logits [B, N, S or S+1]


def masked_nelbo(flow: DiscreteFlow, logits_fn: NelboFn, x1: Tensor, mask: Tensor, *, num_t_samples: int,
                 generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Monte-Carlo negative ELBO of masked (absorbing) discrete flow matching, in nats.

    NELBO(x1) = E_{t~U(0,1)} [ d_kappa/(1-kappa) * sum over masked valid i of -log p_theta(x1_i | x_t) ]
    (the module docstring's bound for masking noise), estimated with ``num_t_samples`` stratified
    times per sequence (t_k = (k + u)/K, unbiased). ``logits_fn(x_t [B, N], t [B]) -> logits [B, N, S]``.
    Padding (``mask`` False) is never noised and never scored. Returns ``nats`` [B] (per sequence),
    ``nats_per_token`` (total nats / total valid tokens) and ``bits_per_token``; divide total nats by
    ln 2 and by bytes for bits per byte. ConfigError unless the flow has masking noise.
    """
    _check_noise(flow, "mask", "masked_nelbo")
    return _mc_nelbo(flow, logits_fn, x1, mask, num_t_samples, generator)


def uniform_nelbo(flow: DiscreteFlow, logits_fn: NelboFn, x1: Tensor, mask: Tensor, *, num_t_samples: int,
                  generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Monte-Carlo negative ELBO of discrete flow matching with uniform noise, in nats.

    NELBO(x1) = E_{t~U(0,1)} E_{x_t} [ d_kappa/(1-kappa) * sum over valid i of
      (x_t^i != x1^i: -log p̂_i(x1^i) - p̂_i(x_t^i);  x_t^i == x1^i: 1 - p̂_i(x1^i)) ]
    (the module docstring's bound; p̂ = softmax(logits) over the S data tokens). Unlike masking it is
    not tight even for the exact posterior. Finite only if the model becomes sure of the current
    token as t -> 1 (1 - p̂_i(x_t^i) = O(1 - kappa_t), as the exact posterior is), which needs a
    time-conditioned model; even then the estimate is heavy-tailed (rare terms ~ c_t log(1/(1 - kappa_t))
    near t = 1), so use more t samples than for masking. Same arguments, estimator, padding handling
    and returns as ``masked_nelbo``; ConfigError unless the flow has uniform noise.
    """
    _check_noise(flow, "uniform", "uniform_nelbo")
    return _mc_nelbo(flow, logits_fn, x1, mask, num_t_samples, generator)


def token_nelbo(flow: DiscreteFlow, logits_fn: NelboFn, x1: Tensor, mask: Tensor, *, num_t_samples: int,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """``masked_nelbo`` or ``uniform_nelbo``, whichever matches ``flow.noise``."""
    nelbo = {"mask": masked_nelbo, "uniform": uniform_nelbo}[flow.noise]
    return nelbo(flow, logits_fn, x1, mask, num_t_samples=num_t_samples, generator=generator)


def _check_noise(flow: DiscreteFlow, noise: str, name: str) -> None:
    if flow.noise != noise:
        raise ConfigError(f"{name} needs {noise!r} noise, the flow has {flow.noise!r}; use token_nelbo")


@torch.no_grad()
def _mc_nelbo(flow: DiscreteFlow, logits_fn: NelboFn, x1: Tensor, mask: Tensor, num_t_samples: int,
              generator: torch.Generator | None) -> dict[str, Tensor]:
    """The stratified-t Monte-Carlo estimate of the module docstring's bound, for either noise."""
    if not isinstance(num_t_samples, int) or num_t_samples < 1:
        raise ConfigError(f"num_t_samples must be a positive int, got {num_t_samples!r}")
    valid = mask.bool()
    x1_safe = torch.where(valid, x1, torch.zeros_like(x1))
    B = x1.shape[0]
    u = torch.rand(B, generator=generator, dtype=torch.float64, device=x1.device)
    nats = torch.zeros(B, dtype=torch.float64, device=x1.device)
    for k in range(num_t_samples):
        t = (k + u) / num_t_samples  # [B] in [0, 1)
        x_t = torch.where(valid, flow.sample_path(x1_safe, t, generator=generator), x1_safe)  # [B, N]
        logp = _data_log_probs(logits_fn(x_t, t), x1.shape, flow.vocab_size, torch.float64)  # [B, N, S]
        density = torch.where(valid, _path_kl_density(flow, logp, x_t, x1_safe), 0.0)  # [B, N], per unit c_t
        c_t = jump_coefficient(flow.scheduler, t, min_denominator=1e-12)  # [B], 1/time
        nats += c_t * density.sum(-1)
    nats = nats / num_t_samples
    per_token = nats.sum() / valid.sum().clamp_min(1)
    return {"nats": nats, "nats_per_token": per_token, "bits_per_token": per_token / math.log(2)}


def _path_kl_density(flow: DiscreteFlow, logp: Tensor, x_t: Tensor, x1: Tensor) -> Tensor:
    """sum_{y != x_t^i} [û - u + u log(u/û)] / c_t per position, [B, N] float64 (module docstring).

    logp [B, N, S] = log p̂ over the data tokens; x_t, x1 [B, N] (x_t may be MASK = S).
    """
    lp_x1 = logp.gather(-1, x1[..., None]).squeeze(-1)  # log p̂_i(x1^i), [B, N]
    if flow.noise == "mask":  # x_t^i is x1^i (frozen: no rate out) or MASK (p̂(MASK) = 0)
        return torch.where(x_t == x1, torch.zeros_like(lp_x1), -lp_x1)
    p_cur = logp.gather(-1, x_t[..., None]).squeeze(-1).exp()  # p̂_i(x_t^i), [B, N]
    return torch.where(x_t == x1, -torch.expm1(lp_x1), -lp_x1 - p_cur)


# --- structure terms ----------------------------------------------------------------------------
# Frame-flow convention (../shared/MATH.md). With the clipped time scale s(t) = 1 / (1 - min(t, t_clip)):
#   trans_vf  = mean over free residues and xyz of (s(t) (x̂_1 - x_1))²  [nm²]; equal to the squared
#               difference of the implied velocities (x̂_1 - x_t)/(1 - t) - (x_1 - x_t)/(1 - t) (clipped)
#   rots_vf   = mean over free residues and xyz of (s(t) (log(R_tᵀ R̂_1) - log(R_tᵀ R_1)))²  [rad²]
#   bb_atom   = mean over free residues, atoms N CA C O and xyz of (s(t) (â - a))²  [nm²]
#   pair_dist = mean over atom pairs closer than ``pair_cutoff`` in the data, at least one atom of a free
#               residue, of (s(t) (d̂ - d))²  [nm²]
#   clash     = Σ over non-adjacent predicted CA pairs of relu(3.5 Å - d̂)², per free residue  [nm²]
# "Free" = res_mask & ~fixed_structure; fixed residues take their data frames before atoms are built, so
# a prediction at a fixed residue never changes a term. bb_atom, pair_dist and clash count only samples with
# t > late_t (t = min(t_trans, t_rots)); late_t=None counts every sample. Each term is a mean over the
# samples that have something to count (0 if none).


def time_scale(t: Tensor, t_clip: float = 0.9) -> Tensor:
    """s(t) = 1 / (1 - min(t, t_clip)) [B], the clipped 1/(1 - t) of the frame-flow losses."""
    if not 0 <= t_clip < 1:
        raise ConfigError(f"t_clip must lie in [0, 1), got {t_clip}")
    return 1.0 / (1.0 - t.clamp(max=t_clip))


def _per_sample_mean(sq: Tensor, weight: Tensor) -> Tensor:
    """sq [B, ...] summed over its non-batch dims / weight [B] (count), averaged over samples with weight > 0."""
    per = sq.flatten(1).sum(-1) / weight.clamp_min(1)
    has = weight > 0
    return (per * has).sum() / has.sum().clamp_min(1)


def translation_vf_loss(pred_trans_1: Tensor, trans_1: Tensor, t: Tensor, mask: Tensor, *,
                        t_clip: float = 0.9) -> dict[str, Tensor]:
    """``trans_vf``: predicted vs true clean translations [B, N, 3] (nm), time-scaled; mask [B, N] = free residues."""
    err = (pred_trans_1 - trans_1) * time_scale(t, t_clip).to(trans_1.dtype)[:, None, None]
    m = mask.to(err.dtype)
    return {"trans_vf": _per_sample_mean(err.pow(2) * m[..., None], 3 * m.sum(-1))}


def rotation_vf_loss(pred_rots_1: Tensor, rots_1: Tensor, rots_t: Tensor, t: Tensor, mask: Tensor, *,
                     t_clip: float = 0.9) -> dict[str, Tensor]:
    """``rots_vf``: body-frame fields at R_t toward R̂_1 and toward R_1 ([B, N, 3, 3] each), time-scaled.

    mask [B, N] = free residues.
    """
    r_t_inv = rots_t.transpose(-1, -2)
    err = so3.log(r_t_inv @ pred_rots_1) - so3.log(r_t_inv @ rots_1)  # [B, N, 3]
    err = err * time_scale(t, t_clip).to(err.dtype)[:, None, None]
    m = mask.to(err.dtype)
    return {"rots_vf": _per_sample_mean(err.pow(2) * m[..., None], 3 * m.sum(-1))}


def _backbone_nm(trans_nm: Tensor, rots: Tensor, res_mask: Tensor) -> Tensor:
    """Backbone atoms [B, N, 4, 3] in nm from frames with translations in nm (ideal geometry is in Å)."""
    return frames_to_backbone(Rigid(rots, trans_nm * TRANS_SCALE), res_mask) / TRANS_SCALE


def backbone_losses(pred_trans_1: Tensor, pred_rots_1: Tensor, trans_1: Tensor, rots_1: Tensor, t: Tensor,
                    res_mask: Tensor, fixed_structure: Tensor | None = None, *, t_clip: float = 0.9,
                    late_t: float | None = 0.75, pair_cutoff: float = 6.0) -> dict[str, Tensor]:
    """``bb_atom`` and ``pair_dist`` (see the section comment) from predicted and true frames (nm).

    t [B] the structure time; ``pair_cutoff`` in Å (local neighbourhood in the data).
    """
    fixed = torch.zeros_like(res_mask) if fixed_structure is None else fixed_structure & res_mask
    free = res_mask & ~fixed
    pred_trans = torch.where(fixed[..., None], trans_1, pred_trans_1)
    pred_rots = torch.where(fixed[..., None, None], rots_1, pred_rots_1)
    scale = time_scale(t, t_clip).to(trans_1.dtype)  # [B]
    gate = torch.ones_like(res_mask[:, 0]) if late_t is None else t > late_t  # [B] bool
    counted = free & gate[:, None]  # [B, N]
    b, n = res_mask.shape
    pred_atoms = _backbone_nm(pred_trans, pred_rots, res_mask)  # [B, N, 4, 3]
    true_atoms = _backbone_nm(trans_1, rots_1, res_mask)
    atom_w = counted[..., None].expand(b, n, 4).to(trans_1.dtype)  # [B, N, 4]
    err = (pred_atoms - true_atoms) * scale[:, None, None, None]
    bb = _per_sample_mean(err.pow(2) * atom_w[..., None], 3 * atom_w.flatten(1).sum(-1))

    present = res_mask[..., None].expand(b, n, 4).reshape(b, n * 4)  # [B, 4N]
    is_counted = counted[..., None].expand(b, n, 4).reshape(b, n * 4)
    d_true = torch.cdist(true_atoms.reshape(b, n * 4, 3), true_atoms.reshape(b, n * 4, 3))  # [B, 4N, 4N] nm
    d_pred = torch.cdist(pred_atoms.reshape(b, n * 4, 3), pred_atoms.reshape(b, n * 4, 3))
    pairs = (present[:, :, None] & present[:, None, :] & (is_counted[:, :, None] | is_counted[:, None, :])
             & (d_true < pair_cutoff / TRANS_SCALE) & ~torch.eye(n * 4, dtype=torch.bool, device=res_mask.device))
    pw = pairs.to(trans_1.dtype)
    d_err = (d_pred - d_true) * scale[:, None, None]
    pair = _per_sample_mean(d_err.pow(2) * pw, pw.flatten(1).sum(-1))
    return {"bb_atom": bb, "pair_dist": pair}


def structure_losses(pred_trans_1: Tensor, pred_rots_1: Tensor, noisy: NoisyBatch, *, t_clip: float = 0.9,
                     late_t: float | None = 0.75, pair_cutoff: float = 6.0) -> dict[str, Tensor]:
    """All five structure terms for a prediction on an ``interpolant.NoisyBatch`` (translations in nm)."""
    free = noisy.res_mask & ~noisy.fixed_structure
    terms = translation_vf_loss(pred_trans_1, noisy.trans_1, noisy.t_trans, free, t_clip=t_clip)
    terms |= rotation_vf_loss(pred_rots_1, noisy.rots_1, noisy.rots_t, noisy.t_rots, free, t_clip=t_clip)
    t_struct = torch.minimum(noisy.t_trans, noisy.t_rots)
    terms |= backbone_losses(pred_trans_1, pred_rots_1, noisy.trans_1, noisy.rots_1, t_struct, noisy.res_mask,
                             noisy.fixed_structure, t_clip=t_clip, late_t=late_t, pair_cutoff=pair_cutoff)
    terms |= clash_loss(pred_trans_1, noisy.res_mask, noisy.fixed_structure, t_struct, late_t=late_t,
                        chain_index=noisy.chain_index)
    return terms


def clash_loss(pred_trans_1: Tensor, res_mask: Tensor, fixed_structure: Tensor | None, t: Tensor, *,
               min_distance: float = CA_MIN_DISTANCE, min_separation: int = 2, late_t: float | None = 0.75,
               chain_index: Tensor | None = None) -> dict[str, Tensor]:
    """``clash``: how far predicted CA atoms of non-adjacent residues come inside ``min_distance``.

    Per sample, Σ over pairs that are not sequence neighbours (``geometry.contacts.ca_overlaps``: other
    chain, or |i - j| >= ``min_separation`` in array order; both real, at least one free) of
    relu(min_distance - d̂_ij)² [nm²], divided by the number of free residues; the mean over samples
    with t > ``late_t`` (t [B] the structure time). Real chains never have non-adjacent CA atoms
    closer than ~3.8 Å, so the data term is zero and this only pushes apart predicted atoms that
    overlap (the clash count of evaluation uses CA-CA < 3 Å). ``min_distance`` in Å.
    """
    fixed = torch.zeros_like(res_mask) if fixed_structure is None else fixed_structure & res_mask
    free = res_mask & ~fixed
    overlap = ca_overlaps(pred_trans_1, res_mask, free, min_distance / TRANS_SCALE, min_separation,
                          chain_index)  # [B, N, N] nm
    gate = torch.ones_like(res_mask[:, 0]) if late_t is None else t > late_t  # [B]
    count = free.sum(-1) * gate  # [B], 0 excludes the sample
    return {"clash": _per_sample_mean(overlap.pow(2) * 0.5, count.to(overlap.dtype))}  # 0.5: each pair is counted twice


def confidence_loss(confidence: Tensor, pred_trans_1: Tensor, trans_1: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """``confidence``: binary cross-entropy of the head's per-residue confidence [B, N] in (0, 1)
    against the lDDT-CA of the model's own predicted translations vs the true ones ([B, N, 3], nm),
    so the head learns to predict how right each residue is (AlphaFold's pLDDT idea, as a
    regression). The target carries no gradient. Also ``lddt_ca``: the mean target (logged).
    """
    with torch.no_grad():
        target = lddt_ca(pred_trans_1.float() * TRANS_SCALE, trans_1.float() * TRANS_SCALE, mask)  # [B, N]
    eps = 1e-6
    p = confidence.float().clamp(eps, 1 - eps)
    bce = -(target * p.log() + (1 - target) * (1 - p).log()) * mask  # [B, N]
    count = mask.float().sum(-1)  # [B]
    return {"confidence": _per_sample_mean(bce, count),
            "lddt_ca": _per_sample_mean(target * mask, count)}


def total_loss(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Σ_k weights[k] · terms[k] over the weighted terms (a weight of 0 skips its term, even if NaN).

    Raises ConfigError when a weighted term is missing, so a typo never silently drops a loss.
    """
    missing = [k for k, w in weights.items() if w != 0 and k not in terms]
    if missing:
        raise ConfigError(f"loss weights name terms {missing} that are not among {sorted(terms)}")
    total = None
    for key, w in weights.items():
        if w != 0:
            total = w * terms[key] if total is None else total + w * terms[key]
    if total is None:
        raise ConfigError(f"every loss weight is 0: {dict(weights)}")
    return total
