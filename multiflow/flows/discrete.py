"""Discrete flow matching: a per-position CTMC over S data tokens (plus MASK at index S).

Vocabulary-agnostic: amino acids (S=20), bytes (S=256) or any BPE vocabulary. Formulas from
../shared/MATH.md, written for a general scheduler kappa_t (MATH.md states them for
kappa_t = t, where d_kappa = 1); with c_t = d_kappa_t / (1 - kappa_t) and p = p_theta(. | x_t):

  path       p_t(a | a_1) = kappa_t delta(a = a_1) + (1 - kappa_t) p_noise(a)
  masking    MASK -> j:   p(j) (d_kappa + eta kappa) / (1 - kappa)          [= p(j)(1 + eta t)/(1 - t)]
             token -> MASK: eta
  uniform    a -> j != a: p(j) (d_kappa + eta (1 + (S - 1) kappa)) / (1 - kappa) + eta p(a)
                                                                   [= p(j)(1 + eta + eta(S-1)t)/(1-t) + eta p(a)]
The eta terms are detailed-balance rates of p_t(. | a_1), so they leave the marginals unchanged.
Shapes: B batch, N positions, S data tokens, M = number of CTMC states (S + 1 masking, S uniform).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from multiflow.errors import ConfigError
from multiflow.flows.base import LinearScheduler, Scheduler, jump_coefficient

NoiseKind = Literal["mask", "uniform"]


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one index per row of ``probs [..., S]`` (non-negative, need not sum to 1), in float64.

    Inverse-CDF sampling with one float64 uniform per row; zero-probability entries are never
    returned. Returns int64 ``[...]``.
    """
    p = probs.detach().to(torch.float64)
    if p.shape[-1] == 0 or not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"probs must be finite and non-negative with a last dim > 0, got shape {tuple(p.shape)}")
    cdf = p.cumsum(-1)  # [..., S], non-decreasing even in floating point
    total = cdf[..., -1:]  # [..., 1]
    if (total <= 0).any():
        raise ValueError("every row of probs needs positive mass; got a row summing to 0")
    u = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=p.device)
    return _inverse_cdf(cdf, u)


def _inverse_cdf(cdf: Tensor, u: Tensor) -> Tensor:
    """Index of the interval of ``cdf [..., S]`` (float64, last entry > 0) holding ``u [..., 1]`` in [0, 1)."""
    total = cdf[..., -1:]
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))  # in [0, total)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1)


def probs_from_logits(logits: Tensor, vocab_size: int, temperature: float = 1.0) -> Tensor:
    """softmax(logits / T) over the S data tokens, in float64. [..., S or S+1] -> [..., S].

    A MASK column (index S) is dropped, so MASK never receives mass. T = 0 gives the one-hot argmax.
    """
    logits = _data_logits(logits, vocab_size, temperature).to(torch.float64)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), vocab_size).to(torch.float64)
    return torch.softmax(logits / temperature, dim=-1)


def _data_logits(logits: Tensor, vocab_size: int, temperature: float) -> Tensor:
    """Checked, detached logits over the S data tokens (a view; the MASK column dropped)."""
    if logits.shape[-1] == vocab_size + 1:
        logits = logits[..., :vocab_size]
    elif logits.shape[-1] != vocab_size:
        raise ValueError(f"logits last dim must be S={vocab_size} (or S+1 with MASK), got {logits.shape[-1]}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    return logits.detach()


class DiscreteFlow:
    """Mixture path and CTMC sampler for S data tokens with masking or uniform noise."""

    def __init__(self, vocab_size: int, noise: NoiseKind = "mask", scheduler: Scheduler | None = None) -> None:
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ConfigError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        if noise not in ("mask", "uniform"):
            raise ConfigError(f"noise must be 'mask' or 'uniform', got {noise!r}")
        self.vocab_size = vocab_size
        self.noise: NoiseKind = noise
        self.scheduler: Scheduler = scheduler if scheduler is not None else LinearScheduler()

    @property
    def mask_token(self) -> int:
        """Index of MASK (= S); only a state of the chain under masking noise."""
        return self.vocab_size

    @property
    def num_states(self) -> int:
        """M: S + 1 under masking noise, S under uniform noise."""
        return self.vocab_size + 1 if self.noise == "mask" else self.vocab_size

    def __repr__(self) -> str:
        return f"DiscreteFlow(vocab_size={self.vocab_size}, noise={self.noise!r}, scheduler={self.scheduler!r})"

    # --- path -----------------------------------------------------------------------
    def sample_prior(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
        """x_0: all MASK (masking) or i.i.d. uniform tokens (uniform). int64 [*shape]."""
        if self.noise == "mask":
            return torch.full(shape, self.mask_token, dtype=torch.int64, device=device)
        return torch.randint(0, self.vocab_size, shape, generator=generator, device=device)

    def sample_path(self, x1: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ p_t(. | x1) independently per position. x1 [B, N] int64 in 0..S-1, t [B] -> [B, N]."""
        self._check_tokens(x1, allow_mask=False, name="x1")
        self._check_time(t, x1.shape[0])
        kappa = self.scheduler.kappa(t.to(torch.float64))[:, None]  # [B, 1]
        u = torch.rand(x1.shape, generator=generator, dtype=torch.float64, device=x1.device)
        noise = self.sample_prior(tuple(x1.shape), generator=generator, device=x1.device)
        return torch.where(u < kappa, x1, noise)

    # --- rates ----------------------------------------------------------------------
    def rate_matrix(self, probs: Tensor, t: Tensor, eta: float = 0.0) -> Tensor:
        """Full generator R[b, n, a, j] (from a to j) given the posterior ``probs [B, N, S]``.

        Rows sum to zero. Under masking a data-token row uses the exact posterior delta(a), so
        ``probs`` only enters the MASK row. Returns float64 [B, N, M, M].
        """
        p, fwd, db = self._coefficients(probs, t, eta)  # [B,N,S], [B,1,1], [B,1,1]
        S, M = self.vocab_size, self.num_states
        rates = torch.zeros(*p.shape[:-1], M, M, dtype=torch.float64, device=p.device)
        if self.noise == "mask":
            rates[..., S, :S] = p * (fwd + eta * db)  # MASK -> j
            rates[..., :S, S] = eta  # token -> MASK
        else:
            # a -> j: p(j) (fwd + eta (1 + (S-1) kappa) / (1 - kappa)) + eta p(a)
            rates = (p[..., None, :] * (fwd + eta * db)[..., None] + eta * p[..., :, None]).expand(
                *p.shape[:-1], M, M).clone()
        eye = torch.eye(M, dtype=torch.bool, device=p.device)
        rates = rates.masked_fill(eye, 0.0)
        return rates - torch.diag_embed(rates.sum(-1))

    def rates(self, x_t: Tensor, probs: Tensor, t: Tensor, eta: float = 0.0) -> Tensor:
        """Jump rates out of the current state: R[b, n, j] = rate(x_t[b, n] -> j), diagonal = -sum.

        x_t [B, N], probs [B, N, S] (posterior over data tokens), t [B]. Returns float64 [B, N, M].
        """
        self._check_tokens(x_t, allow_mask=self.noise == "mask", name="x_t")
        p, fwd, db = self._coefficients(probs, t, eta)
        S, M = self.vocab_size, self.num_states
        cur = torch.nn.functional.one_hot(x_t, M).to(torch.float64)  # [B, N, M]
        if self.noise == "mask":
            is_mask = (x_t == S)[..., None]  # [B, N, 1]
            from_mask = torch.cat([p * (fwd + eta * db), torch.zeros_like(p[..., :1])], -1)
            from_token = torch.zeros_like(cur)
            from_token[..., S] = eta
            off = torch.where(is_mask, from_mask, from_token)
        else:
            p_cur = (p * cur).sum(-1, keepdim=True)  # p(a) at the current token, [B, N, 1]
            off = p * (fwd + eta * db) + eta * p_cur
        off = off * (1.0 - cur)
        return off - cur * off.sum(-1, keepdim=True)

    def _coefficients(self, probs: Tensor, t: Tensor, eta: float) -> tuple[Tensor, Tensor, Tensor]:
        """(p float64 [B,N,S], forward factor d_kappa/(1-kappa), detailed-balance factor), both [B,1,1].

        The detailed-balance factor multiplies eta in the rate *toward* the data token:
        kappa/(1-kappa) for masking, (1 + (S-1) kappa)/(1-kappa) for uniform noise.
        """
        if probs.ndim != 3 or probs.shape[-1] != self.vocab_size:
            raise ValueError(f"probs must be [B, N, S={self.vocab_size}], got {tuple(probs.shape)}")
        fwd, db = self._factors(t, eta, probs.shape[0])
        return probs.to(torch.float64), fwd[:, None, None], db[:, None, None]

    def _factors(self, t: Tensor, eta: float, batch: int) -> tuple[Tensor, Tensor]:
        """The forward and detailed-balance factors of ``_coefficients``, float64 [B] each."""
        if eta < 0:
            raise ConfigError(f"eta must be >= 0, got {eta}")
        self._check_time(t, batch)
        t64 = t.to(torch.float64)
        fwd = jump_coefficient(self.scheduler, t64)
        kappa = self.scheduler.kappa(t64)
        one_minus = (1.0 - kappa).clamp_min(1e-12)
        db = kappa / one_minus if self.noise == "mask" else (1.0 + (self.vocab_size - 1) * kappa) / one_minus
        return fwd, db

    # --- sampling -------------------------------------------------------------------
    def step(self, x_t: Tensor, logits: Tensor, t: Tensor, h: float | Tensor, *, temperature: float = 1.0,
             eta: float = 0.0, purity: bool = False, last_step: bool = False, last_step_argmax: bool = True,
             fixed_mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """One step x_t -> x_{t+h}. x_t [B, N], logits [B, N, S or S+1], t [B], h float or [B].

        Euler: probability h * rate(x_t -> j) for each j != x_t, stay with the rest; if the
        off-diagonal mass exceeds 1 it is renormalised (stay = 0). ``purity`` (masking only):
        unmask a Binomial number of masked positions, most confident first, then re-mask each
        previously unmasked position with probability h * eta. ``last_step``: the eta (noise)
        terms are dropped, and any position still masked afterwards takes the argmax of p_theta
        (or a sample if ``last_step_argmax`` is False). ``fixed_mask`` [B, N] bool: never changed.

        Masking noise without purity takes a fast path with the same distribution and the same
        random numbers (``_mask_euler_step``): p_theta is only computed for the positions that jump.
        """
        self._check_tokens(x_t, allow_mask=self.noise == "mask", name="x_t")
        if logits.shape[:2] != x_t.shape:
            raise ValueError(f"logits {tuple(logits.shape)} do not match x_t {tuple(x_t.shape)}")
        fixed = self._fixed(fixed_mask, x_t)
        h = torch.as_tensor(h, dtype=torch.float64, device=x_t.device).expand(x_t.shape[0])  # [B]
        eta_step = 0.0 if last_step else eta
        if self.noise == "mask" and not purity:
            probs = None  # [B, N, S] never built: rows of p_theta are computed where needed
            x_new = self._mask_euler_step(x_t, logits, t, h, eta_step, temperature, generator)
        else:
            probs = probs_from_logits(logits, self.vocab_size, temperature)  # [B, N, S]
            if purity:
                if self.noise != "mask":
                    raise ConfigError("purity sampling is defined for masking noise only")
                x_new = self._purity_step(x_t, probs, t, h, eta_step, fixed, generator)
            else:
                x_new = sample_categorical(self._euler_transition(x_t, probs, t, h, eta_step), generator)
        if last_step and self.noise == "mask":
            still = x_new == self.mask_token
            if still.any():
                x_new = self._fill_masked(x_new, still, logits, probs, temperature, last_step_argmax, generator)
        return torch.where(fixed, x_t, x_new)

    def _fill_masked(self, x: Tensor, still: Tensor, logits: Tensor, probs: Tensor | None, temperature: float,
                     argmax: bool, generator: torch.Generator | None) -> Tensor:
        """Last step: positions ``still`` [B, N] take the argmax of p_theta, or a sample.

        Same values as ``probs.argmax(-1)`` / ``sample_categorical(probs)`` over all positions (one
        uniform is drawn per position), evaluated on the ``still`` rows only.
        """
        u = None if argmax else torch.rand((*x.shape, 1), generator=generator, dtype=torch.float64, device=x.device)
        rows = still.nonzero(as_tuple=True)
        p = probs[rows] if probs is not None else probs_from_logits(logits[rows], self.vocab_size, temperature)
        if argmax:
            fill = p.argmax(-1)
        else:
            if not torch.isfinite(p).all():
                raise ValueError("probs must be finite; got a non-finite row of p_theta")
            fill = _inverse_cdf(p.cumsum(-1), u[rows])
        return x.index_put(rows, fill)

    def _euler_transition(self, x_t: Tensor, probs: Tensor, t: Tensor, h: Tensor, eta: float) -> Tensor:
        """Euler transition probabilities out of x_t, float64 [B, N, M] (rows sum to 1 up to rounding).

        Probability h * rate(x_t -> j) for each j != x_t, the rest on x_t; if the off-diagonal mass
        exceeds 1 it is renormalised to 1 (stay = 0). The general path, used for uniform noise.
        """
        rates = self.rates(x_t, probs, t, eta)  # [B, N, M]
        cur = torch.nn.functional.one_hot(x_t, self.num_states).to(torch.float64)
        off = (h[:, None, None] * rates).clamp_min(0.0) * (1.0 - cur)  # jump probabilities
        total = off.sum(-1, keepdim=True)
        off = torch.where(total > 1.0, off / total.clamp_min(1e-300), off)
        stay = (1.0 - off.sum(-1, keepdim=True)).clamp_min(0.0)
        return off + stay * cur

    def _mask_leave_probs(self, x_t: Tensor, t: Tensor, h: Tensor, eta: float) -> Tensor:
        """Masking noise: probability that each position leaves its state in one Euler step, [B, N].

        MASK: min(1, h (d_kappa + eta kappa) / (1 - kappa)), the summed jump probabilities
        h sum_j p(j) (...) with sum_j p(j) = 1; the token is then j with probability p(j) (the
        general path's renormalisation when the sum exceeds 1 divides every jump by the same
        total, so it leaves these conditionals unchanged). A data token re-masks with
        probability min(1, h eta).
        """
        fwd, db = self._factors(t, eta, x_t.shape[0])
        unmask, remask = h * (fwd + eta * db), h * eta  # [B] each
        if not (torch.isfinite(unmask).all() and torch.isfinite(remask).all()):
            raise ValueError(f"jump probabilities must be finite; got h={h.tolist()}, eta={eta}")
        return torch.where(x_t == self.mask_token, unmask.clamp(0.0, 1.0)[:, None], remask.clamp(0.0, 1.0)[:, None])

    def _mask_euler_step(self, x_t: Tensor, logits: Tensor, t: Tensor, h: Tensor, eta: float, temperature: float,
                         generator: torch.Generator | None) -> Tensor:
        """Euler step under masking noise without [B, N, M] tensors; p_theta only for jumping rows.

        Same distribution as ``sample_categorical(self._euler_transition(...))``, drawn from the
        same random numbers: one float64 uniform u per position, read against the row laid out
        as the general path lays it out. A MASK row is [jumps to tokens 0..S-1, stay at S], so it
        jumps iff u < leave, and then to the token whose cumulative p_theta interval holds
        u / leave. A token row keeps stay mass at the token and the re-mask mass at S > token,
        so it re-masks iff u * (leave + stay) >= stay. For a given generator state both paths
        return the same tokens, up to rounding at interval boundaries (~1e-16 per position).
        """
        S = self.mask_token
        data_logits = _data_logits(logits, self.vocab_size, temperature)  # [B, N, S], a view
        leave = self._mask_leave_probs(x_t, t, h, eta)  # [B, N]
        stay = (1.0 - leave).clamp_min(0.0)
        mass = leave + stay  # 1 up to rounding, as in the general path
        u = torch.rand((*x_t.shape, 1), generator=generator, dtype=torch.float64, device=x_t.device).squeeze(-1)
        target = torch.minimum(u * mass, torch.nextafter(mass, torch.zeros_like(mass)))  # in [0, mass)
        masked = x_t == S
        if temperature > 0 and masked.any():
            # the general path fails on a non-finite p_theta at any MASK position: NaN or +inf
            # logits, or a row of only -inf, are exactly the rows whose max is not finite
            row_max = data_logits.amax(-1)  # [B, N]
            if not torch.isfinite(row_max[masked]).all():
                raise ValueError("logits give a non-finite p_theta at a masked position (NaN, +inf or all -inf)")
        jump = masked & (target < leave)
        x_new = x_t.masked_fill(~masked & (target >= stay), S)  # re-mask
        if jump.any():
            rows = jump.nonzero(as_tuple=True)
            p = probs_from_logits(data_logits[rows], self.vocab_size, temperature)  # [K, S] float64
            x_new = x_new.index_put(rows, _inverse_cdf(p.cumsum(-1), (target / leave)[rows][:, None]))
        return x_new

    def _purity_step(self, x_t: Tensor, probs: Tensor, t: Tensor, h: Tensor, eta: float, fixed: Tensor,
                     generator: torch.Generator | None) -> Tensor:
        S = self.mask_token
        _, fwd, db = self._coefficients(probs, t, eta)
        p_unmask = (h * (fwd + eta * db).view(-1)).clamp(0.0, 1.0)  # [B], per masked position
        masked = (x_t == S) & ~fixed  # [B, N]
        n_unmask = torch.binomial(masked.sum(-1).to(torch.float64), p_unmask, generator=generator)  # [B]
        score = probs.max(-1).values.masked_fill(~masked, -1.0)  # confidence, [B, N]
        order = score.argsort(dim=-1, descending=True, stable=True)
        positions = torch.arange(x_t.shape[1], device=x_t.device).expand_as(order)
        rank = torch.empty_like(order).scatter_(-1, order, positions)  # rank of each position by confidence
        chosen = masked & (rank < n_unmask[:, None])
        x_new = torch.where(chosen, sample_categorical(probs, generator), x_t)
        u = torch.rand(x_t.shape, generator=generator, dtype=torch.float64, device=x_t.device)
        remask = (x_t != S) & ~fixed & (u < h[:, None] * eta)
        return x_new.masked_fill(remask, S)

    def reveal_step(self, x_t: Tensor, logits: Tensor, num_reveal: int, *, temperature: float = 1.0,
                    block_size: int | None = None, confidence: Literal["max", "sampled"] = "max",
                    fixed_mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """LLaDA-style step (masking only): unmask the ``num_reveal`` most confident masked positions.

        Tokens are sampled from softmax(logits / T). Confidence is the position's max probability
        (``"max"``: the choice does not look at the drawn token, so with exact posteriors and one
        token per step the samples are exact) or the drawn token's probability (``"sampled"``, as in
        LLaDA's low-confidence remasking). With ``block_size``, only the leftmost block of
        ``block_size`` positions that still holds a masked position is eligible (semi-autoregressive).
        """
        if self.noise != "mask":
            raise ConfigError("reveal_step needs masking noise")
        if num_reveal < 1 or (block_size is not None and block_size < 1):
            raise ConfigError(f"num_reveal and block_size must be >= 1, got {num_reveal}, {block_size}")
        self._check_tokens(x_t, allow_mask=True, name="x_t")
        fixed = self._fixed(fixed_mask, x_t)
        probs = probs_from_logits(logits, self.vocab_size, temperature)  # [B, N, S]
        masked = (x_t == self.mask_token) & ~fixed  # [B, N]
        if block_size is not None:
            pos = torch.arange(x_t.shape[1], device=x_t.device)
            first = torch.where(masked, pos, x_t.shape[1]).min(-1, keepdim=True).values  # [B, 1]
            masked = masked & (pos // block_size == first // block_size)
        tokens = sample_categorical(probs, generator)
        if confidence == "max":
            score = probs.max(-1).values
        elif confidence == "sampled":
            score = probs.gather(-1, tokens[..., None]).squeeze(-1)
        else:
            raise ConfigError(f"confidence must be 'max' or 'sampled', got {confidence!r}")
        score = score.masked_fill(~masked, -1.0)
        top = score.topk(min(num_reveal, x_t.shape[1]), dim=-1).indices  # [B, k]
        chosen = torch.zeros_like(masked).scatter_(-1, top, True) & masked
        return torch.where(chosen, tokens, x_t)

    # --- checks ---------------------------------------------------------------------
    def _check_tokens(self, x: Tensor, *, allow_mask: bool, name: str) -> None:
        if x.dtype != torch.int64 or x.ndim != 2:
            raise ValueError(f"{name} must be an int64 tensor [B, N], got {x.dtype} {tuple(x.shape)}")
        hi = self.vocab_size if allow_mask else self.vocab_size - 1
        if x.numel() and (x.min() < 0 or x.max() > hi):
            raise ValueError(f"{name} tokens must lie in 0..{hi}, got {int(x.min())}..{int(x.max())}")

    @staticmethod
    def _check_time(t: Tensor, batch: int) -> None:
        if t.shape != (batch,) or not t.is_floating_point():
            raise ValueError(f"t must be a float tensor of shape [B]=[{batch}], got {t.dtype} {tuple(t.shape)}")
        if (t < 0).any() or (t > 1).any():
            raise ValueError(f"t must lie in [0, 1], got {float(t.min())}..{float(t.max())}")

    @staticmethod
    def _fixed(fixed_mask: Tensor | None, x_t: Tensor) -> Tensor:
        if fixed_mask is None:
            return torch.zeros_like(x_t, dtype=torch.bool)
        if fixed_mask.shape != x_t.shape or fixed_mask.dtype != torch.bool:
            raise ValueError(f"fixed_mask must be bool {tuple(x_t.shape)}, got {fixed_mask.dtype} "
                             f"{tuple(fixed_mask.shape)}")
        return fixed_mask
