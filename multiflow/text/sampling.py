"""Sampling text with the discrete flow: unconditional, prefix-conditioned and infilling.

All three are one problem: a template of ``L`` positions, some fixed to given tokens
(``fixed_mask`` True) and the rest generated. Every step is ``DiscreteFlow.step`` from
``multiflow.flows.discrete``; this module only runs the time grid and calls the model.

Templates in text: ``"def add(a, b):\\n<<40>>\\n"`` fixes the literal text and leaves
40 free tokens where ``<<40>>`` stands (``<<N>>`` = N free tokens, bytes for the byte
tokenizer). Unconditional sampling is the template ``"<<L>>"``; a prefix is
``"prefix<<N>>"``.

For a time-free model (absorbing noise, RADD) the logits of a sequence that did not
change since the last step are reused, so the number of network evaluations (NFE)
can be far below the number of steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow

HOLE = re.compile(r"<<(\d+)>>")


@dataclass(frozen=True)
class Template:
    """tokens [L] int64 (free positions hold MASK) and fixed [L] bool."""

    tokens: np.ndarray
    fixed: np.ndarray

    @property
    def length(self) -> int:
        return int(self.tokens.size)


def parse_template(text: str, tokenizer) -> Template:
    """Turn ``"fixed text<<N>>more fixed text"`` into tokens and a fixed mask.

    Each fixed piece is tokenized on its own, so with BPE the tokens at a piece boundary
    may differ from tokenizing the whole final text (exact for bytes).
    """
    pieces, fixed, pos = [], [], 0
    for m in HOLE.finditer(text):
        if m.start() > pos:
            ids = tokenizer.encode(text[pos : m.start()])
            pieces.append(ids)
            fixed.append(np.ones(ids.size, dtype=bool))
        n = int(m.group(1))
        pieces.append(np.full(n, tokenizer.mask_id, dtype=np.int64))
        fixed.append(np.zeros(n, dtype=bool))
        pos = m.end()
    if pos < len(text):
        ids = tokenizer.encode(text[pos:])
        pieces.append(ids)
        fixed.append(np.ones(ids.size, dtype=bool))
    if not pieces:
        raise ConfigError("empty template; write e.g. '<<256>>' for 256 free tokens")
    return Template(np.concatenate(pieces).astype(np.int64), np.concatenate(fixed))


@dataclass
class SampleResult:
    tokens: torch.Tensor  # [B, L] int64, no MASK left
    nfe: int  # network evaluations (rows recomputed / B, summed over steps)
    steps: int


@torch.no_grad()
def sample_tokens(model: nn.Module, flow: DiscreteFlow, n: int, length: int, steps: int, *,
                  init: torch.Tensor | None = None, fixed_mask: torch.Tensor | None = None,
                  temperature: float = 1.0, eta: float = 0.0, purity: bool = False,
                  last_step_argmax: bool = True, reuse_logits: bool = True, sampler: str = "euler",
                  generator: torch.Generator | None = None) -> SampleResult:
    """Run the CTMC from the prior (t=0) to data (t=1) on a uniform grid of ``steps`` steps.

    ``init [B or 1, L]`` holds the fixed tokens where ``fixed_mask [B or 1, L]`` is True;
    fixed positions are never changed. ``model(x_t [B, L], t [B]) -> logits [B, L, S]``.
    ``sampler="euler"`` uses ``DiscreteFlow.step`` (``eta``, ``purity`` apply);
    ``"reveal"`` uses ``DiscreteFlow.reveal_step`` (LLaDA: ceil(L / steps) most confident
    positions per step, masking noise only).
    """
    if sampler not in ("euler", "reveal"):
        raise ConfigError(f"sampler must be 'euler' or 'reveal', got {sampler!r}")
    if steps < 1 or n < 1 or length < 1:
        raise ConfigError(f"need steps, n and length >= 1, got steps={steps}, n={n}, length={length}")
    device = next(model.parameters()).device
    x = flow.sample_prior((n, length), generator=generator, device=device)
    fixed = None
    if fixed_mask is not None:
        if init is None:
            raise ConfigError("fixed_mask needs init tokens to fix")
        fixed = fixed_mask.to(device=device, dtype=torch.bool).expand(n, length).clone()
        x = torch.where(fixed, init.to(device).expand(n, length), x)
    time_free = not getattr(model, "time_conditioned", True)
    reuse = reuse_logits and time_free
    h = 1.0 / steps
    logits, prev, nfe_rows = None, None, 0
    was_training = model.training
    model.eval()
    try:
        for k in range(steps):
            t = torch.full((n,), k * h, dtype=torch.float32, device=device)
            if not reuse or logits is None:
                logits, rows = model(x, t), n
            else:
                changed = (x != prev).any(-1)  # [B]
                rows = int(changed.sum())
                if rows:
                    logits = logits.clone()
                    logits[changed] = model(x[changed], t[changed])
            nfe_rows += rows
            prev = x
            if sampler == "reveal":
                x = flow.reveal_step(x, logits, -(-length // steps), temperature=temperature, fixed_mask=fixed,
                                     generator=generator)
                continue
            x = flow.step(x, logits, t, h, temperature=temperature, eta=eta, purity=purity,
                          last_step=k == steps - 1, last_step_argmax=last_step_argmax,
                          fixed_mask=fixed, generator=generator)
    finally:
        model.train(was_training)
    return SampleResult(tokens=x, nfe=round(nfe_rows / n), steps=steps)


def sample_texts(model: nn.Module, flow: DiscreteFlow, tokenizer, template: str | Template, n: int,
                 steps: int, **kwargs) -> tuple[list[str], SampleResult]:
    """Sample ``n`` completions of a template and decode them to text."""
    tpl = parse_template(template, tokenizer) if isinstance(template, str) else template
    init = torch.from_numpy(tpl.tokens)[None]
    fixed = torch.from_numpy(tpl.fixed)[None]
    res = sample_tokens(model, flow, n, tpl.length, steps, init=init, fixed_mask=fixed if fixed.any() else None,
                        **kwargs)
    return [tokenizer.decode(row) for row in res.tokens.cpu()], res
