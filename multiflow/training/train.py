"""``multiflow train``: compose the Hydra config, build the components, run Lightning.

Usage::

    multiflow train                                   # configs/train.yaml defaults (cpu_small)
    multiflow train experiment=cpu_small data.root=processed trainer.max_time=00:02:00:00
    multiflow train model=multiflow_size trainer=ddp trainer.devices=8
    multiflow train resume=last run_dir=runs/my-run   # continue from runs/my-run/checkpoints/last.ckpt
    multiflow train experiment=cpu_small init_from=multiflow/assets/models/cpu_small.pt  # warm start
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(os.environ.get("MULTIFLOW_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))


def compose_config(config_name: str = "train", overrides: list[str] | None = None) -> DictConfig:
    """Compose a config from ``configs/`` with Hydra's compose API (no working-directory change)."""
    from hydra import compose, initialize_config_dir

    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(
            f"config folder {CONFIG_DIR} not found; set MULTIFLOW_CONFIG_DIR to the project's configs/ folder"
        )
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []), return_hydra_config=False)


def resume_checkpoint(resume: str | None, last: Path) -> str | None:
    """Checkpoint to resume from: ``resume=<path>``, ``resume=last`` for the run's ``last`` checkpoint
    (which must exist), or ``resume=auto``: ``last`` if it exists, else None (a fresh start).

    ``auto`` is for job scripts that a scheduler may requeue after preemption: the same command
    starts the run the first time and continues it every later time.
    """
    if resume in (None, ""):
        return None
    if resume == "auto":
        return str(last) if last.is_file() else None
    path = last if resume == "last" else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {path} does not exist"
                                + (" (resume=auto starts a fresh run when there is none)" if resume == "last" else ""))
    return str(path)


# Model switches that may go from off to on in a warm start, with the parameter names (substrings)
# that may start non-zero. Every other new weight must start at zero, so the grown model computes
# what the old one computed (plus a new output, for a new head) until training moves it.
ADDITIVE_SWITCHES: dict[str, tuple[str, ...]] = {
    "edge_atom_distances": (),  # one zero-initialised projection
    "confidence_head": ("confidence_head.",),  # a new output; the old outputs do not read it
    "node_messages": (".messages.edge_in.", ".messages.node_i.", ".messages.node_j.", ".messages.hidden."),
    # ^ hidden layers of the message MLP; its output projection (.messages.out) starts at zero
}


def warm_start(module, path: str) -> None:
    """Load denoiser weights from a checkpoint (slim or Lightning) before training; the optimiser starts fresh.

    The model config must match the checkpoint's, except that switches in ``ADDITIVE_SWITCHES``
    may go from off to on.
    """
    import dataclasses

    from multiflow.errors import ConfigError
    from multiflow.models.config import DenoiserConfig
    from multiflow.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(path, device="cpu")
    # from_dict fills the defaults, so configs written before a switch existed compare equal
    old = dataclasses.asdict(DenoiserConfig.from_dict(dict(loaded.config["model"])))
    new = dataclasses.asdict(DenoiserConfig.from_dict(dict(module.run_config["model"])))
    added = [k for k in ADDITIVE_SWITCHES if new[k] and not old[k]]
    for key in added:
        old[key] = new[key]
    if "node_messages" in added:
        old["message_dim"] = new["message_dim"]  # the width of a layer the checkpoint does not have
    if old != new:
        differ = sorted(k for k in old if old[k] != new[k])
        raise ConfigError(
            f"init_from={path} was trained with a different model config (differs in {differ}); use the same "
            f"model group (only {list(ADDITIVE_SWITCHES)} may be switched on in a warm start)"
        )
    denoiser = module.model.denoiser
    missing, unexpected = denoiser.load_state_dict(loaded.model.denoiser.state_dict(), strict=not added)
    state = denoiser.state_dict()
    may_be_nonzero = tuple(part for key in added for part in ADDITIVE_SWITCHES[key])
    feeds_old = [n for n in missing if not any(part in "." + n for part in may_be_nonzero)]
    if unexpected or any(bool(state[name].any()) for name in feeds_old):
        raise ConfigError(f"init_from={path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")
    if added:
        print(f"warm start from {path}: switched on {added} (new weights: {missing})")


def run(cfg: DictConfig) -> Path:
    """Train with a composed config; returns the run folder."""
    import lightning as L

    from multiflow.training.builders import build_datamodule, build_module, build_trainer

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    if cfg.get("init_from"):
        warm_start(module, cfg.init_from)
    trainer = build_trainer(cfg, run_dir)
    with warnings.catch_warnings():
        # ProteinDataModule.train_dataloader continues an interrupted epoch itself (seeded order,
        # batches already done left out), which Lightning's resume check cannot see
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
        trainer.fit(module, datamodule=datamodule,
                    ckpt_path=resume_checkpoint(cfg.resume, run_dir / "checkpoints" / "last.ckpt"))
    if trainer.global_step > 0:
        # ModelCheckpoint writes last.ckpt only every val_check_interval steps: a stop by max_time
        # or by max_steps off that interval would otherwise lose the steps since then (Ctrl-C and
        # SIGTERM end fit with an exception; builders' SaveOnInterrupt callback saves for those).
        trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="multiflow train",
        description="Train a multiflow model. Positional arguments are Hydra overrides (key=value, group=option).",
        epilog="Groups: data, model (cpu_small | multiflow_size), flows, training, trainer (cpu | ddp), experiment.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_steps=1000 data.root=processed")
    parser.add_argument("--config-name", default="train", help="top-level config in configs/ (default: train)")
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    args = parser.parse_args(argv)
    cfg = compose_config(args.config_name, args.overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    run_dir = run(cfg)
    print(f"run folder: {run_dir}")
    return 0
