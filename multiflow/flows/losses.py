"""Pure loss functions. Each returns a dict of named scalar terms (``"loss"`` is the one to optimise).

Token (discrete flow) terms follow ../shared/MATH.md: cross-entropy of the predicted posterior
p_theta(a_1 | x_t) against the data token, over the positions that carry information (masking
noise: masked positions only; uniform noise: every position), optionally weighted by the
masked-diffusion (MDLM) ELBO weight d_kappa_t / (1 - kappa_t) (= 1/(1 - t) for kappa_t = t).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from multiflow.errors import ConfigError
from multiflow.flows.base import jump_coefficient
from multiflow.flows.discrete import DiscreteFlow


def _token_cross_entropy(logits: Tensor, x1: Tensor, counted: Tensor, vocab_size: int) -> Tensor:
    """-log softmax(logits)[x1] over the S data tokens, [B, N]; zero where not ``counted``."""
    if logits.shape[-1] == vocab_size + 1:
        logits = logits[..., :vocab_size]  # MASK never carries mass
    elif logits.shape[-1] != vocab_size:
        raise ValueError(f"logits last dim must be S={vocab_size} (or S+1), got {logits.shape[-1]}")
    if logits.shape[:2] != x1.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match x1 {tuple(x1.shape)}")
    bad = counted & ((x1 < 0) | (x1 >= vocab_size))
    if bad.any():
        raise ValueError(f"x1 has tokens outside 0..{vocab_size - 1} at counted positions "
                         f"(e.g. {int(x1[bad][0])}); exclude them with the mask")
    target = torch.where(counted, x1, torch.zeros_like(x1))
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, target[..., None]).squeeze(-1)  # [B, N]
    return torch.where(counted, -logp, torch.zeros_like(logp))


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
    generated = mask.bool() if fixed_mask is None else mask.bool() & ~fixed_mask.bool()
    counted = generated & (x_t == flow.mask_token) if flow.noise == "mask" else generated
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


@torch.no_grad()
def masked_nelbo(flow: DiscreteFlow, logits_fn: Callable[[Tensor, Tensor], Tensor], x1: Tensor, mask: Tensor, *,
                 num_t_samples: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Monte-Carlo negative ELBO of masked (absorbing) discrete flow matching, in nats.

    NELBO(x1) = E_{t~U(0,1)} [ d_kappa/(1-kappa) * sum over masked valid i of -log p_theta(x1_i | x_t) ],
    estimated with ``num_t_samples`` stratified times per sequence (t_k = (k + u)/K, unbiased).
    ``logits_fn(x_t [B, N], t [B]) -> logits [B, N, S]``. Padding (``mask`` False) is never masked
    and never scored. Returns ``nats`` [B] (per sequence), ``nats_per_token`` (total nats / total
    valid tokens) and ``bits_per_token``; divide total nats by ln 2 and by bytes for bits per byte.
    """
    if flow.noise != "mask":
        raise ConfigError(f"masked_nelbo needs masking noise, the flow has {flow.noise!r}")
    if not isinstance(num_t_samples, int) or num_t_samples < 1:
        raise ConfigError(f"num_t_samples must be a positive int, got {num_t_samples!r}")
    valid = mask.bool()
    x1_safe = torch.where(valid, x1, torch.zeros_like(x1))
    B = x1.shape[0]
    u = torch.rand(B, generator=generator, dtype=torch.float64, device=x1.device)
    nats = torch.zeros(B, dtype=torch.float64, device=x1.device)
    for k in range(num_t_samples):
        t = (k + u) / num_t_samples  # [B] in [0, 1)
        x_t = torch.where(valid, flow.sample_path(x1_safe, t, generator=generator), x1_safe)
        counted = valid & (x_t == flow.mask_token)
        ce = _token_cross_entropy(logits_fn(x_t, t), x1_safe, counted, flow.vocab_size).double()
        w = jump_coefficient(flow.scheduler, t, min_denominator=1e-12)
        nats += w * ce.sum(-1)
    nats = nats / num_t_samples
    per_token = nats.sum() / valid.sum().clamp_min(1)
    return {"nats": nats, "nats_per_token": per_token, "bits_per_token": per_token / math.log(2)}
