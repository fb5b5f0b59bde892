"""The thin LightningModule: corrupt (flows) -> denoise (model) -> named loss terms -> log.

Evaluation, PDB writing and folding models live elsewhere; this file only trains.
EMA of the weights is Lightning's ``EMAWeightAveraging`` callback (see builders.py), which
also makes the saved checkpoints and validation use the averaged weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch
from torch import Tensor

from multiflow.data.batch import Batch
from multiflow.flows.interpolant import Interpolant, NoisyBatch
from multiflow.errors import ConfigError
from multiflow.flows.losses import confidence_loss, distill_token_loss, structure_losses, token_loss, total_loss
from multiflow.models.denoiser import Denoiser
from multiflow.models.flow_model import DenoiserFlowModel, noisy_batch_inputs
from multiflow.sampling.solver import Prediction
from multiflow.training.schedule import cooldown_window, lr_factor


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation and loss settings (configs/training/*.yaml)."""

    lr: float = 1e-4  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 200  # linear warm-up, optimiser steps
    decay_steps: int = 0  # cosine cool-down over the last decay_steps of trainer.max_steps (0: constant rate)
    min_lr_ratio: float = 0.05  # learning rate at the end of the cool-down, as a fraction of lr
    self_condition_prob: float = 0.5  # probability of a self-conditioning pass per batch
    ema_decay: float = 0.999  # EMA of weights (0 disables; applied by the callback)
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"trans_vf": 1.0, "rots_vf": 0.5, "aa": 1.0, "bb_atom": 0.25, "pair_dist": 0.25,
                                 "clash": 50.0, "confidence": 0.1}
    )  # "confidence" applies only to models with a confidence head
    aux_loss_t_min: float = 0.25  # backbone-atom, pair-distance and clash losses only where the structure time exceeds this
    likelihood_weighting: bool = False  # 1/(1-t) weight on the token loss


class MultiflowModule(L.LightningModule):
    def __init__(self, denoiser: Denoiser, interpolant: Interpolant, config: TrainingConfig) -> None:
        super().__init__()
        self.model = DenoiserFlowModel(denoiser)
        self.interpolant = interpolant
        self.config = config
        self.loss_weights = dict(config.loss_weights)
        if denoiser.confidence_head is None:
            self.loss_weights.pop("confidence", None)  # the term exists only with the head
        elif not self.loss_weights.get("confidence"):
            raise ConfigError("model.confidence_head=true needs training.loss_weights.confidence > 0, otherwise the "
                              "head is never trained and its numbers mean nothing")
        self.run_config: dict | None = None  # the resolved run config, saved with checkpoints

    # --- one step -----------------------------------------------------------------------
    def compute_losses(self, batch: Batch) -> dict[str, Tensor]:
        # Under mixed precision (trainer.precision=bf16-mixed / 16-mixed) only the network runs in reduced
        # precision: noising (rotation interpolation) and the loss terms (SO(3) logs, distances) stay float32.
        full_precision = torch.autocast(device_type=batch.trans.device.type, enabled=False)
        with full_precision:
            noisy = self.interpolant.corrupt(batch)
            state, t, extras = noisy_batch_inputs(noisy)
        self_condition = None
        if self.training and self.config.self_condition_prob > 0:
            if float(torch.rand(())) < self.config.self_condition_prob:
                with torch.no_grad():
                    self_condition = self.model(state, t, **extras)
        pred = self.model(state, t, **extras, self_condition=self_condition)
        with full_precision:
            return self.loss_terms(noisy, pred, batch.seq_target)

    def loss_terms(self, noisy: NoisyBatch, pred: Prediction, seq_target: Tensor | None = None) -> dict[str, Tensor]:
        """Named loss terms and their weighted sum ``loss``; ``seq_target`` [B, N, 20] adds ``aa_distill``."""
        terms = structure_losses(pred.trans_1, pred.rots_1, noisy, late_t=self.config.aux_loss_t_min)
        aa = token_loss(
            self.interpolant.seq_flow, pred.logits, noisy.aatype_1, noisy.aatype_t, noisy.t_aa, noisy.seq_mask,
            fixed_mask=noisy.fixed_sequence, likelihood_weighting=self.config.likelihood_weighting,
        )
        terms["aa"] = aa["loss"]
        terms["aa_ce"] = aa["ce"].detach()
        if seq_target is None and self.loss_weights.get("aa_distill"):
            raise ConfigError("training.loss_weights.aa_distill > 0 needs sequence targets: set data.seq_targets to "
                              "a folder written by `python -m data_pipelines.seq_targets`")
        if seq_target is not None:
            terms |= distill_token_loss(self.interpolant.seq_flow, pred.logits, seq_target, noisy.aatype_t,
                                        noisy.seq_mask, fixed_mask=noisy.fixed_sequence)
        if pred.confidence is not None:
            terms |= confidence_loss(pred.confidence, pred.trans_1, noisy.trans_1, noisy.res_mask)
        terms["loss"] = total_loss(terms, self.loss_weights)
        return terms

    # --- Lightning hooks -------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        terms = self.compute_losses(batch)
        self._log_terms("train", terms, batch)
        return terms["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        terms = self.compute_losses(batch)
        self._log_terms("val", terms, batch)

    def _log_terms(self, stage: str, terms: dict[str, Tensor], batch: Batch) -> None:
        n_res = int(batch.res_mask.sum())
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.detach().float(), batch_size=batch.batch_size,
                     prog_bar=name == "loss", sync_dist=stage == "val", on_step=stage == "train", on_epoch=stage == "val")
        if stage == "train":
            self.log("train/residues", float(n_res), reduce_fx="sum", on_step=True, batch_size=batch.batch_size)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        warmup = max(int(self.config.warmup_steps), 1)
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        start, end = cooldown_window(max_steps, int(self.config.decay_steps), warmup)
        ratio = float(self.config.min_lr_ratio)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, start, end, ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["multiflow_config"] = self.run_config
