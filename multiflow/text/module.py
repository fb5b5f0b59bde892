"""Thin LightningModules: corrupt with the discrete flow -> denoise -> named loss terms -> log.

* :class:`TextFlowModule` trains a :class:`~multiflow.text.model.TokenDenoiser` with
  ``multiflow.flows.losses.token_loss`` on paths from ``DiscreteFlow.sample_path``; its
  validation metric is the Monte-Carlo negative ELBO (``token_nelbo``: masking or uniform noise)
  in bits per byte.
* :class:`TextARModule` trains the causal baseline; validation reports its bits per byte.

Checkpoints carry everything needed to rebuild model, flow and tokenizer (``meta``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import lightning as L
import torch
from torch import nn

from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import token_loss, token_nelbo
from multiflow.training.schedule import lr_factor


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 200  # linear warm-up from 0 to lr (optimizer steps)
    max_steps: int = 10_000  # cosine decay to min_lr_ratio * lr at this step
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # applied by the Trainer (gradient_clip_val); kept here for the record


def stratified_times(batch: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """t [B] in [0, 1): one uniform offset shifted by k/B (lower-variance than i.i.d. times)."""
    u = torch.rand((), generator=generator, device=device)
    return (u + torch.arange(batch, device=device) / batch) % 1.0


class _TextModule(L.LightningModule):
    def __init__(self, model: nn.Module, token_bytes: torch.Tensor, optim: OptimConfig, meta: dict | None) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.meta = dict(meta or {})
        self.register_buffer("token_bytes", token_bytes.to(torch.float64), persistent=False)  # [S]
        self._val_nats = 0.0
        self._val_bytes = 0.0

    def configure_optimizers(self):
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.optim.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.optim.lr,
                                betas=tuple(self.optim.betas))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _lr_factor(self, step: int) -> float:
        o = self.optim
        return lr_factor(step, o.warmup_steps, o.warmup_steps, max(o.max_steps, o.warmup_steps + 1), o.min_lr_ratio)

    def n_bytes(self, x1: torch.Tensor) -> float:
        return float(self.token_bytes[x1].sum())

    def on_validation_epoch_start(self) -> None:
        self._val_nats, self._val_bytes = 0.0, 0.0

    def on_validation_epoch_end(self) -> None:
        if self._val_bytes > 0:
            self.log("val/bpb", self._val_nats / math.log(2) / self._val_bytes, prog_bar=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["multiflow_text"] = self.meta


class TextFlowModule(_TextModule):
    """Discrete flow matching on tokens; ``val/bpb`` is the NELBO (an upper bound on NLL)."""

    def __init__(self, model: nn.Module, flow: DiscreteFlow, token_bytes: torch.Tensor, optim: OptimConfig,
                 likelihood_weighting: bool = True, max_weight: float | None = None,
                 val_t_samples: int = 4, meta: dict | None = None) -> None:
        super().__init__(model, token_bytes, optim, meta)
        self.flow = flow
        self.likelihood_weighting, self.max_weight = likelihood_weighting, max_weight
        self.val_t_samples = int(val_t_samples)

    def _logits(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x_t, t.float())

    def training_step(self, x1: torch.Tensor, batch_idx: int) -> torch.Tensor:
        t = stratified_times(x1.shape[0], x1.device)
        x_t = self.flow.sample_path(x1, t)
        logits = self._logits(x_t, t)
        terms = token_loss(self.flow, logits, x1, x_t, t, torch.ones_like(x1, dtype=torch.bool),
                           likelihood_weighting=self.likelihood_weighting, max_weight=self.max_weight)
        B = x1.shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=B)
        self.log("train/ce", terms["ce"], batch_size=B)
        self.log("train/masked_frac", terms["num_counted"] / x1.numel(), batch_size=B)
        return terms["loss"]

    def validation_step(self, x1: torch.Tensor, batch_idx: int) -> None:
        out = token_nelbo(self.flow, self._logits, x1, torch.ones_like(x1, dtype=torch.bool),
                          num_t_samples=self.val_t_samples)
        self._val_nats += float(out["nats"].sum())
        self._val_bytes += self.n_bytes(x1)


class TextARModule(_TextModule):
    """Next-token cross-entropy of the causal baseline; ``val/bpb`` is its exact NLL per byte."""

    def training_step(self, x1: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.model.nll(x1).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=x1.shape[0])
        return loss

    def validation_step(self, x1: torch.Tensor, batch_idx: int) -> None:
        self._val_nats += float(self.model.nll(x1).double().sum())
        self._val_bytes += self.n_bytes(x1)


class Throughput(L.Callback):
    """Logs ``train/tokens_per_s`` (wall clock, averaged over ``every`` optimizer steps)."""

    def __init__(self, every: int = 10) -> None:
        self.every, self._t0, self._tokens = every, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tokens += batch.numel()
        if (batch_idx + 1) % self.every == 0:
            dt = time.perf_counter() - self._t0
            pl_module.log("train/tokens_per_s", self._tokens / dt, prog_bar=True)
            self._t0, self._tokens = time.perf_counter(), 0
