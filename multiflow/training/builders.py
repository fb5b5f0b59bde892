"""Turn a composed Hydra config into components. Each component gets typed arguments, never the cfg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from multiflow.constants import NUM_AA
from multiflow.data.datamodule import ProteinDataModule
from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.euclidean import EuclideanFlow
from multiflow.flows.interpolant import Interpolant, InterpolantConfig, PartialConfig, TaskMixture
from multiflow.flows.so3 import SO3Flow
from multiflow.models.config import DenoiserConfig
from multiflow.models.denoiser import Denoiser


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_interpolant(flows: DictConfig | dict) -> Interpolant:
    flows = _plain(flows)
    config = InterpolantConfig(
        min_t=float(flows["min_t"]),
        mixture=TaskMixture(**flows["mixture"]),
        partial=PartialConfig(**{**flows["partial"], "fix_weights": tuple(flows["partial"]["fix_weights"])}),
        separate_t_prob=float(flows.get("separate_t_prob", 0.0)),
    )
    return Interpolant(
        config,
        trans_flow=EuclideanFlow(**flows["trans"]),
        rots_flow=SO3Flow(**flows["rots"]),
        seq_flow=DiscreteFlow(NUM_AA, flows["aa"]["noise"]),
    )


def build_denoiser(model: DictConfig | dict) -> Denoiser:
    return Denoiser(DenoiserConfig.from_dict(_plain(model)))


def build_module(cfg: DictConfig):
    from multiflow.training.module import MultiflowModule, TrainingConfig

    training = _plain(cfg.training)
    if training.get("loss_weights", {}).get("aa_distill") and not (cfg.get("data") or {}).get("seq_targets"):
        raise ConfigError("training.loss_weights.aa_distill > 0 needs data.seq_targets (teacher amino-acid "
                          "probabilities written by `python -m data_pipelines.seq_targets`)")
    module = MultiflowModule(build_denoiser(cfg.model), build_interpolant(cfg.flows), TrainingConfig(**training))
    module.run_config = _plain(cfg)  # saved into every checkpoint (see MultiflowModule.on_save_checkpoint)
    return module


def build_datamodule(cfg: DictConfig) -> ProteinDataModule:
    data = _plain(cfg.data)
    data["train_splits"] = tuple(data["train_splits"])
    data["val_splits"] = tuple(data["val_splits"])
    return ProteinDataModule(**data)


def save_on_interrupt(path: Path):
    """A callback that writes ``path`` (last.ckpt) when Ctrl-C or SIGTERM stops training.

    Lightning answers Ctrl-C with ``sys.exit(1)`` and SIGTERM (a cluster's preemption, ``kill``)
    with an exception, both from inside ``fit``, so the save after ``fit`` in ``train.run`` never
    runs and the steps since the last periodic save would be lost. Lightning calls
    ``on_exception`` on every rank first; SIGTERM is broadcast to all ranks, so under DDP every
    rank reaches the (collective) save at the same step.
    """
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    class SaveOnInterrupt(Callback):
        def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
            if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.global_step > 0:
                trainer.save_checkpoint(path)
                print(f"training stopped at step {trainer.global_step}; saved {path}")

    return SaveOnInterrupt()


def step_progress_bar():
    """Lightning's progress bar for a run budgeted in steps: the optimiser step out of ``max_steps``
    first among the shown numbers (the bar itself counts batches of the epoch), and "Epoch E" without
    the "/-2" Lightning prints for ``max_epochs=-1``. Rich's bar when rich is installed, else tqdm's."""
    try:
        from lightning.pytorch.callbacks import RichProgressBar as Base

        Base()  # raises ModuleNotFoundError without rich
    except ModuleNotFoundError:
        from lightning.pytorch.callbacks import TQDMProgressBar as Base

    class StepProgressBar(Base):
        def get_metrics(self, trainer, pl_module) -> dict:
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)  # the logger's version number
            if trainer.max_steps is not None and trainer.max_steps > 0:
                metrics = {"step": f"{trainer.global_step}/{trainer.max_steps}", **metrics}
            return metrics

        def _get_train_description(self, current_epoch: int) -> str:  # RichProgressBar's
            if self.trainer.max_epochs not in (None, -1):
                return super()._get_train_description(current_epoch)
            return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"

    return StepProgressBar()


def build_trainer(cfg: DictConfig, run_dir: Path):
    import lightning as L
    from lightning.pytorch.callbacks import EMAWeightAveraging, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    trainer_kwargs = _plain(cfg.trainer)
    has_val = bool(cfg.data.val_splits)
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best-{step}",
            monitor="val/loss" if has_val else None,
            mode="min",
            save_top_k=1,
            save_last=True,
            every_n_train_steps=int(trainer_kwargs.get("val_check_interval") or 500),
        ),
        LearningRateMonitor(logging_interval="step"),
        save_on_interrupt(run_dir / "checkpoints" / "last.ckpt"),
    ]
    if trainer_kwargs.get("enable_progress_bar", True):
        callbacks.append(step_progress_bar())
    if float(cfg.training.ema_decay) > 0:
        callbacks.append(EMAWeightAveraging(decay=float(cfg.training.ema_decay)))
    loggers = [CSVLogger(save_dir=str(run_dir), name="logs")]  # logs/version_<k>/metrics.csv, one per (re)start
    if cfg.get("tensorboard", False):
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard"))
    if not has_val:
        trainer_kwargs["limit_val_batches"] = 0
    return L.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers, **trainer_kwargs)
