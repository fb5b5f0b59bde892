"""Token transformers: the bidirectional flow denoiser and the same-size causal AR baseline.

One block implementation serves both; ``causal`` switches the attention mask. The input
vocabulary is ``S + 1`` (index S is MASK for the denoiser, BOS for the AR model); the
output is ``S`` logits, so neither model can put mass on MASK.

Time conditioning (optional) is adaptive layer norm: an embedding of t [B] gives a
shift, scale and gate per block (zero-initialised, so training starts from the
time-free network). With absorbing (mask) noise the posterior does not depend on t
(RADD), so ``time_conditioned=False`` is a sound default there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from multiflow.errors import ConfigError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1]: [B] -> [B, dim] (t is scaled by 1000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # [B, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) applied to queries and keys."""

    def __init__(self, head_dim: int, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary positions need an even head dimension, got {head_dim}")
        self.register_buffer("inv_freq", base ** (-torch.arange(0, head_dim, 2).float() / head_dim), persistent=False)

        self._cache: tuple[int, torch.device, torch.dtype, torch.Tensor, torch.Tensor] | None = None

    def _cos_sin(self, length: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._cache
        stale = c is None or c[0] != length or c[1] != x.device or c[2] != x.dtype
        if stale or (c[3].is_inference() and not torch.is_inference_mode_enabled()):  # made under inference_mode
            pos = torch.arange(length, device=x.device, dtype=torch.float32)
            ang = pos[:, None] * self.inv_freq[None]  # [L, Dh/2]
            ang = torch.cat([ang, ang], -1)  # [L, Dh]
            c = self._cache = (length, x.device, x.dtype, ang.cos().to(x.dtype), ang.sin().to(x.dtype))
        return c[3], c[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, H, L, Dh] -> same shape, rotated by position."""
        cos, sin = self._cos_sin(x.shape[-2], x)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Block(nn.Module):
    """Pre-norm transformer block; optional adaLN (shift, scale, gate) from a condition vector."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float, causal: bool, rotary: Rotary | None,
                 cond_dim: int | None, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ConfigError(f"d_model={dim} must be divisible by n_heads={n_heads}")
        self.n_heads, self.causal, self.rotary, self.dropout = n_heads, causal, rotary, dropout
        affine = cond_dim is None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        hidden = int(mlp_ratio * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = None
        if cond_dim is not None:
            self.modulation = nn.Linear(cond_dim, 6 * dim)
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def _attention(self, h: torch.Tensor) -> torch.Tensor:
        B, L, D = h.shape
        q, k, v = self.qkv(h).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3x[B,H,L,Dh]
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                             dropout_p=self.dropout if self.training else 0.0)  # [B,H,L,Dh]
        return self.proj(out.transpose(1, 2).reshape(B, L, D))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x [B, L, D], cond [B, C] or None -> [B, L, D]."""
        if self.modulation is None:
            x = x + self._attention(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(cond)[:, None].chunk(6, dim=-1)  # each [B,1,D]
        x = x + (1 + g1) * self._attention(self.norm1(x) * (1 + sc1) + sh1)
        return x + (1 + g2) * self.mlp(self.norm2(x) * (1 + sc2) + sh2)


class TokenTransformer(nn.Module):
    """tokens [B, L] in 0..S (S = MASK or BOS), optional t [B] -> logits [B, L, S]."""

    def __init__(self, vocab_size: int, d_model: int = 256, n_layers: int = 4, n_heads: int = 4,
                 mlp_ratio: float = 4.0, max_len: int = 1024, positions: str = "rotary",
                 causal: bool = False, time_conditioned: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if positions not in ("rotary", "learned"):
            raise ConfigError(f"positions must be 'rotary' or 'learned', got {positions!r}")
        if causal and time_conditioned:
            raise ConfigError("the causal AR baseline has no time; set time_conditioned=False")
        self.vocab_size, self.max_len, self.causal = int(vocab_size), int(max_len), bool(causal)
        self.time_conditioned = bool(time_conditioned)
        self.embed = nn.Embedding(vocab_size + 1, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02) if positions == "learned" else None
        rotary = Rotary(d_model // n_heads) if positions == "rotary" else None
        cond_dim = d_model if time_conditioned else None
        self.time_mlp = (nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
                         if time_conditioned else None)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, mlp_ratio, causal, rotary, cond_dim, dropout)
                                    for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(d_model, elementwise_affine=not time_conditioned)
        self.out_modulation = nn.Linear(d_model, 2 * d_model) if time_conditioned else None
        if self.out_modulation is not None:
            nn.init.zeros_(self.out_modulation.weight)
            nn.init.zeros_(self.out_modulation.bias)
        self.head = nn.Linear(d_model, vocab_size)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        B, L = tokens.shape
        if self.pos is not None and L > self.max_len:  # rotary positions have no hard limit
            raise ConfigError(f"sequence length {L} exceeds the model's max_len={self.max_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() > self.vocab_size):
            raise ValueError(f"tokens must lie in 0..{self.vocab_size}, got {int(tokens.min())}..{int(tokens.max())}")
        x = self.embed(tokens)  # [B, L, D]
        if self.pos is not None:
            x = x + self.pos[:L]
        cond = None
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("this denoiser is time-conditioned; pass t of shape [B]")
            cond = self.time_mlp(timestep_embedding(t.reshape(B), x.shape[-1]))  # [B, D]
        for block in self.blocks:
            x = block(x, cond)
        x = self.norm_out(x)
        if self.out_modulation is not None:
            shift, scale = self.out_modulation(cond)[:, None].chunk(2, dim=-1)
            x = x * (1 + scale) + shift
        return self.head(x)  # [B, L, S]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class TokenDenoiser(TokenTransformer):
    """Bidirectional denoiser: x_t [B, L] (MASK = S) and t [B] -> posterior logits [B, L, S]."""

    def __init__(self, vocab_size: int, **kwargs) -> None:
        kwargs.pop("causal", None)
        super().__init__(vocab_size, causal=False, **kwargs)


class CausalLM(TokenTransformer):
    """Same-size causal AR baseline; index S is BOS. ``forward(x)`` predicts x[:, i] from x[:, :i]."""

    def __init__(self, vocab_size: int, **kwargs) -> None:
        kwargs.pop("causal", None)
        kwargs["time_conditioned"] = False
        super().__init__(vocab_size, causal=True, **kwargs)

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L] (data only) -> logits [B, L, S] for each position given its prefix."""
        bos = torch.full_like(tokens[:, :1], self.vocab_size)
        return super().forward(torch.cat([bos, tokens[:, :-1]], dim=1))

    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in nats per position: [B, L]."""
        logits = self(tokens)
        return F.cross_entropy(logits.transpose(1, 2).float(), tokens, reduction="none")

    @torch.no_grad()
    def generate(self, n: int, length: int, prefix: torch.Tensor | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling (no KV cache; the baseline is for likelihoods, not speed): [n, length]."""
        device = self.head.weight.device
        out = torch.empty(n, 0, dtype=torch.long, device=device) if prefix is None else prefix.to(device).expand(n, -1)
        while out.shape[1] < length:
            ctx = torch.cat([out, out.new_zeros(n, 1)], dim=1)  # last slot is a placeholder
            probs = torch.softmax(self(ctx)[:, -1].double() / temperature, dim=-1)
            out = torch.cat([out, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return out[:, :length]
