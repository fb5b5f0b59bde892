"""A small correlated distribution over sequences with an exact (enumerated) posterior.

Used to drive the discrete sampler with the true p(x1_i | x_t) and compare what it generates
with the target. Length L=3 over S=4 tokens: 64 sequences, ten of them carrying 98% of the mass.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from multiflow.flows.discrete import DiscreteFlow

S, L = 4, 3
_HEAVY = {  # strongly correlated: mostly constant or palindromic sequences
    (0, 0, 0): 0.20, (1, 1, 1): 0.15, (2, 2, 2): 0.12, (3, 3, 3): 0.10, (0, 1, 2): 0.10,
    (2, 1, 0): 0.08, (3, 0, 3): 0.08, (1, 3, 1): 0.07, (0, 2, 0): 0.04, (3, 3, 0): 0.04,
}
SEQS = torch.tensor(list(itertools.product(range(S), repeat=L)), dtype=torch.int64)  # [64, L]


def target_probs() -> Tensor:
    """q(x) over SEQS [64], float64: the table above plus 2% spread over the other 54."""
    q = torch.full((len(SEQS),), 0.02 / (len(SEQS) - len(_HEAVY)), dtype=torch.float64)
    for seq, p in _HEAVY.items():
        q[seq_index(torch.tensor([seq]))] = p
    return q / q.sum()


def seq_index(x: Tensor) -> Tensor:
    """Row of SEQS for each sequence in x [B, L] (tokens < S)."""
    return (x * torch.tensor([S ** (L - 1 - i) for i in range(L)])).sum(-1)


def exact_posterior(flow: DiscreteFlow, x_t: Tensor, t: Tensor, q: Tensor) -> Tensor:
    """p(x1_i = j | x_t) [B, L, S] by enumeration: q(x1) p_t(x_t | x1) normalised, then marginalised."""
    match = (x_t[:, None, :] == SEQS[None, :, :]).to(torch.float64)  # [B, 64, L]
    if flow.noise == "mask":
        lik_pos = match + (x_t[:, None, :] == flow.mask_token).to(torch.float64)
    else:
        kappa = flow.scheduler.kappa(t.to(torch.float64))[:, None, None]
        lik_pos = kappa * match + (1 - kappa) / S
    post = q[None, :] * lik_pos.prod(-1)  # [B, 64]
    post = post / post.sum(-1, keepdim=True)
    onehot = torch.nn.functional.one_hot(SEQS, S).to(torch.float64)  # [64, L, S]
    return torch.einsum("bm,mls->bls", post, onehot)


def independent_posterior(flow: DiscreteFlow, x_t: Tensor, t: Tensor, q: Tensor) -> Tensor:
    """A wrong posterior: the exact one for the product of q's per-position marginals."""
    onehot = torch.nn.functional.one_hot(SEQS, S).to(torch.float64)
    marg = torch.einsum("m,mls->ls", q, onehot)  # [L, S]
    q_ind = torch.stack([marg[i, SEQS[:, i]] for i in range(L)], -1).prod(-1)  # [64]
    return exact_posterior(flow, x_t, t, q_ind / q_ind.sum())


def table_posterior(posterior, flow: DiscreteFlow, x_t: Tensor, t: float, q: Tensor) -> Tensor:
    """``posterior`` evaluated once for each of the M**L possible states at a common time t, then looked up."""
    M = flow.num_states
    states = torch.tensor(list(itertools.product(range(M), repeat=L)), dtype=torch.int64)  # [M**L, L]
    table = posterior(flow, states, torch.full((len(states),), t, dtype=torch.float64), q)  # [M**L, L, S]
    idx = (x_t * torch.tensor([M ** (L - 1 - i) for i in range(L)])).sum(-1)
    return table[idx]


def generate(flow: DiscreteFlow, posterior, n: int, steps: int, *, eta: float = 0.0, purity: bool = False,
             seed: int = 0, q: Tensor | None = None) -> Tensor:
    """Run the sampler from t=0 to t=1 with ``steps`` uniform Euler steps; returns x_1 [n, L]."""
    q = target_probs() if q is None else q
    g = torch.Generator().manual_seed(seed)
    x = flow.sample_prior((n, L), generator=g)
    h = 1.0 / steps
    for k in range(steps):
        t = torch.full((n,), k * h, dtype=torch.float64)
        logits = table_posterior(posterior, flow, x, k * h, q).clamp_min(1e-300).log()
        x = flow.step(x, logits, t, h, eta=eta, purity=purity, last_step=k == steps - 1, generator=g)
    return x
