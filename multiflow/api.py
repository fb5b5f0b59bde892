"""Python API: load a model, design proteins, get typed records back.

    from multiflow.api import load_model

    model = load_model()                                   # bundled weights (or load_model("run.ckpt"))
    designs = model.generate(lengths=[80, 100], num_samples=4, seed=7)
    designs[0].to_pdb("design.pdb"); print(designs[0].sequence, designs[0].metrics)
    seqs = model.inverse_fold("complex.pdb", chains_to_design="A", fixed_residues="A12 A13", batch_size=8)
    folded = model.fold(["MKTAYIAKQR..."])
    scaffolds = model.scaffold("motif.pdb", "5-15/A10-25/30-40", num_designs=8, keep_motif_sequence=True)
    model.save(scaffolds, "runs/scaffolds")                # run folder: PDBs, FASTA, designs.csv, run.json

Every call returns a :class:`~multiflow.sampling.outputs.DesignSet` (a sequence of
:class:`~multiflow.sampling.outputs.Design`). Sampler settings (``num_steps``, ``temperature``,
``eta``, ``purity``, ...) default to ``configs/sampling/default.yaml`` and can be given per call.
``seed=None`` draws a random seed; the seed used is in ``result.settings["seed"]``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from multiflow.data.chain import ProteinChain
from multiflow.errors import PARTIAL_RUN_STOPS, ConfigError, MissingWeightsError
from multiflow.sampling.outputs import Design, DesignSet, model_label, write_run
from multiflow.sampling.solver import SolverConfig

__all__ = ["DEFAULT_CHECKPOINT", "DesignModel", "Design", "DesignSet", "SamplingSettings", "load_model"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "models" / "cpu_small.pt"
SETTING_ALIASES = {"num_timesteps": "num_steps", "sampling_temp": "temperature"}


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler settings; keys and defaults mirror ``configs/sampling/default.yaml``."""

    num_steps: int = 100  # Euler steps from min_t to 1
    min_t: float = 0.01  # first time point
    self_condition: bool | None = None  # None: as the model was trained
    recycles: int = 0  # extra self-conditioned passes per step (needs self-conditioning); cost x (1 + recycles)
    temperature: float = 0.1  # amino-acid softmax temperature; 0 = argmax
    eta: float = 0.0  # CTMC stochasticity, >= 0
    purity: bool = False  # confidence-ordered unmasking
    last_step_argmax: bool = True  # still-masked positions at the last step take the argmax
    clash_guidance: float = 1.0  # in [0, 1]: push apart predicted CA atoms closer than 3.5 Å (0 = the model alone)
    max_tokens: int = 4000  # designs per forward pass x longest length <= this
    trajectory_stride: int = 1  # keep every k-th x_t when saving trajectories

    def __post_init__(self) -> None:
        checks = [("num_steps", self.num_steps >= 1, ">= 1"), ("min_t", 0 <= self.min_t < 1, "in [0, 1)"),
                  ("recycles", self.recycles >= 0, ">= 0"),
                  ("temperature", self.temperature >= 0, ">= 0"), ("eta", self.eta >= 0, ">= 0"),
                  ("clash_guidance", 0 <= self.clash_guidance <= 1, "in [0, 1]"),
                  ("max_tokens", self.max_tokens >= 1, ">= 1"),
                  ("trajectory_stride", self.trajectory_stride >= 1, ">= 1")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"sampling setting {name} must be {expected}, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, overrides: list[str] | dict[str, Any] | None = None,
                    path: str | Path | None = None) -> SamplingSettings:
        """``configs/sampling/default.yaml`` (if present) updated by ``key=value`` strings or a dict."""
        from omegaconf import OmegaConf

        values: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(cls)}
        path = Path(path) if path is not None else _config_dir() / "sampling" / "default.yaml"
        if path.is_file():
            values.update(_known(OmegaConf.to_container(OmegaConf.load(path)) or {}, str(path)))
        if isinstance(overrides, dict):
            values.update(_known(overrides, "settings"))
        elif overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"cannot read override(s) {bad}; expected key=value, e.g. num_steps=200")
            dotlist = OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
            flat = dotlist.pop("sampling", {}) if isinstance(dotlist.get("sampling"), dict) else {}
            values.update(_known({**dotlist, **flat}, "override"))
        return cls.coerce(values)

    @classmethod
    def coerce(cls, values: dict[str, Any]) -> SamplingSettings:
        """Build from loosely typed values (YAML/CLI strings), with a ConfigError naming a bad one."""
        out = {}
        for f in dataclasses.fields(cls):
            v = values.get(f.name, f.default)
            if v is None:
                if f.name != "self_condition":
                    raise ConfigError(f"sampling setting {f.name} cannot be null")
                out[f.name] = None
                continue
            try:
                if isinstance(f.default, bool) or f.name == "self_condition":
                    out[f.name] = _to_bool(v)
                elif isinstance(f.default, int):
                    out[f.name] = int(v)
                else:
                    out[f.name] = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"sampling setting {f.name}: cannot use {v!r}") from None
        return cls(**out)

    def replace(self, **changes: Any) -> SamplingSettings:
        changes = {SETTING_ALIASES.get(k, k): v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown sampling setting(s) {unknown}")
        return SamplingSettings.coerce({**dataclasses.asdict(self), **changes})

    def solver_config(self, model_self_condition: bool) -> SolverConfig:
        sc = model_self_condition if self.self_condition is None else self.self_condition
        return SolverConfig(num_steps=self.num_steps, min_t=self.min_t, self_condition=sc, recycles=self.recycles,
                            temperature=self.temperature, eta=self.eta, purity=self.purity,
                            last_step_argmax=self.last_step_argmax, clash_guidance=self.clash_guidance)


def _config_dir() -> Path:
    return Path(os.environ.get("MULTIFLOW_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


def _known(values: dict[str, Any], where: str) -> dict[str, Any]:
    values = {SETTING_ALIASES.get(k, k): v for k, v in values.items()}
    fields = {f.name for f in dataclasses.fields(SamplingSettings)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown sampling setting(s) {unknown}; known: {sorted(fields)}")
    return values


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(v)


def check_device(device: str | torch.device) -> str:
    text = str(device)
    if text not in ("auto", "cpu") and not text.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {text!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {text} requested but CUDA is not available here; use --device cpu or auto")
    return text


def load_model(checkpoint: str | Path | None = None, device: str = "auto",
               settings: SamplingSettings | None = None) -> DesignModel:
    """Load weights (``None``: the bundled ``multiflow/assets/models/cpu_small.pt``) for design."""
    from multiflow.training.checkpoint import load_checkpoint

    check_device(device)
    if checkpoint is None:
        if not DEFAULT_CHECKPOINT.is_file():
            raise MissingWeightsError(
                f"the bundled model {DEFAULT_CHECKPOINT} is not there yet (training is in progress); pass a checkpoint "
                "written by `multiflow train` or export_checkpoint: load_model('path/to/model.ckpt') or "
                "--checkpoint path/to/model.ckpt, or place the file at that path"
            )
        checkpoint = DEFAULT_CHECKPOINT
    loaded = load_checkpoint(checkpoint, device)  # named errors for missing, corrupt or mismatched files
    return DesignModel(loaded, settings or SamplingSettings.from_config())


def _structure(structure: Any, chains: Any = None) -> list[ProteinChain]:
    from multiflow.data.io import read_structure

    if isinstance(structure, (str, Path)):
        return read_structure(structure, chains=chains)
    if isinstance(structure, Design):
        return list(structure.chains)
    if isinstance(structure, ProteinChain):
        return [structure]
    items = list(structure)
    if not items or not all(isinstance(c, ProteinChain) for c in items):
        raise ConfigError("structure must be a file path, a ProteinChain, a list of them, or a Design")
    return items


class DesignModel:
    """A loaded model plus default sampler settings; each method runs one design task."""

    def __init__(self, loaded: Any, settings: SamplingSettings | None = None) -> None:
        self.loaded = loaded
        self.settings = settings or SamplingSettings()

    def __repr__(self) -> str:
        return f"DesignModel(checkpoint={str(self.loaded.path)!r}, device={self.device})"

    @property
    def device(self) -> torch.device:
        return next(self.loaded.model.parameters()).device

    @property
    def model_label(self) -> str:
        return model_label(self.loaded.path, self.loaded.sha256)

    def _prepare(self, seed: int | None, overrides: dict[str, Any]) -> tuple[SamplingSettings, int, dict[str, Any]]:
        settings = self.settings.replace(**overrides)
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        cfg = settings.solver_config(bool(self.loaded.model.denoiser.cfg.self_condition))
        return settings, seed, {"max_tokens": settings.max_tokens, "trajectory_stride": settings.trajectory_stride,
                                "solver": cfg}

    def _finish(self, result: DesignSet, settings: SamplingSettings, seed: int, inputs: dict[str, Any],
                started: float) -> DesignSet:
        solver = settings.solver_config(bool(self.loaded.model.denoiser.cfg.self_condition))
        info = {**dataclasses.asdict(settings), "self_condition": solver.self_condition, "seed": seed,
                "inputs": inputs, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 3)}
        return dataclasses.replace(result, settings=info)

    def _run(self, seed, overrides, inputs, call) -> DesignSet:
        started = time.time()
        settings, seed, engine = self._prepare(seed, overrides)
        solver = engine.pop("solver")
        try:
            result = call(self.loaded, solver, seed=seed, **engine)
        except PARTIAL_RUN_STOPS as stop:  # stop.result: the finished designs, with their settings too
            if stop.result is not None:
                stop.result = self._finish(stop.result, settings, seed, inputs, started)
            raise
        return self._finish(result, settings, seed, inputs, started)

    def generate(self, lengths: Any = None, num_samples: int = 1, *, partial_sequence: str | None = None,
                 seed: int | None = None, allow_long: bool = False, save_trajectory: bool = False,
                 on_batch: Any = None, **settings: Any) -> DesignSet:
        """Unconditional co-design for ``lengths`` (int, list, or "70-150:10"), or around ``partial_sequence``."""
        from multiflow.sampling.tasks import codesign

        inputs = {"lengths": lengths, "num_samples": num_samples, "partial_sequence": partial_sequence}
        return self._run(seed, settings, inputs, lambda loaded, solver, **kw: codesign(
            loaded, solver, lengths, num_samples, partial_sequence=partial_sequence, allow_long=allow_long,
            save_trajectory=save_trajectory, on_batch=on_batch, **kw))

    def inverse_fold(self, structure: Any, *, chains_to_design: Any = None, fixed_residues: Any = None,
                     redesigned_residues: Any = None, bias_AA: Any = None, omit_AA: Any = None,  # noqa: N803
                     bias_AA_per_residue: dict[str, Any] | None = None,  # noqa: N803
                     omit_AA_per_residue: dict[str, str] | None = None,  # noqa: N803
                     number_of_batches: int = 1, batch_size: int = 1, num_sequences: int | None = None,
                     seed: int | None = None,
                     allow_long: bool = False, save_trajectory: bool = False, on_batch: Any = None,
                     **settings: Any) -> DesignSet:
        """Sequences for a backbone (file path or chains); other chains stay as fixed context."""
        from multiflow.sampling.tasks import inverse_fold

        chains = _structure(structure)
        inputs = {"structure": str(structure) if isinstance(structure, (str, Path)) else chains[0].name,
                  "chains_to_design": chains_to_design, "fixed_residues": fixed_residues,
                  "redesigned_residues": redesigned_residues, "bias_AA": bias_AA, "omit_AA": omit_AA,
                  "bias_AA_per_residue": bias_AA_per_residue, "omit_AA_per_residue": omit_AA_per_residue,
                  "number_of_batches": number_of_batches, "batch_size": batch_size, "num_sequences": num_sequences}
        return self._run(seed, settings, inputs, lambda loaded, solver, **kw: inverse_fold(
            loaded, solver, chains, chains_to_design=chains_to_design, fixed_residues=fixed_residues,
            redesigned_residues=redesigned_residues, bias_aa=bias_AA, omit_aa=omit_AA,
            bias_aa_per_residue=bias_AA_per_residue, omit_aa_per_residue=omit_AA_per_residue,
            number_of_batches=number_of_batches, batch_size=batch_size, num_sequences=num_sequences,
            allow_long=allow_long,
            save_trajectory=save_trajectory, on_batch=on_batch, **kw))

    def fold(self, sequences: Any, num_samples: int = 1, *, seed: int | None = None, allow_long: bool = False,
             save_trajectory: bool = False, on_batch: Any = None, **settings: Any) -> DesignSet:
        """Structures for sequences: a string, a list of strings or (name, sequence) pairs, or a FASTA Path."""
        from multiflow.data.io import read_fasta
        from multiflow.sampling.tasks import fold

        records = read_fasta(sequences) if isinstance(sequences, Path) else sequences
        inputs = {"sequences": str(sequences) if isinstance(sequences, Path) else None, "num_samples": num_samples}
        return self._run(seed, settings, inputs, lambda loaded, solver, **kw: fold(
            loaded, solver, records, num_samples, allow_long=allow_long, save_trajectory=save_trajectory,
            on_batch=on_batch, **kw))

    def scaffold(self, structure: Any, contigs: str, num_designs: int = 1, *, keep_motif_sequence: bool = False,
                 length: Any = None, seed: int | None = None, allow_long: bool = False, save_trajectory: bool = False,
                 on_batch: Any = None, **settings: Any) -> DesignSet:
        """Motif scaffolding / inpainting from an RFdiffusion contig string (e.g. "5-15/A10-25/30-40")."""
        from multiflow.sampling.tasks import scaffold

        chains = _structure(structure)
        inputs = {"structure": str(structure) if isinstance(structure, (str, Path)) else chains[0].name,
                  "contigs": contigs, "num_designs": num_designs, "keep_motif_sequence": keep_motif_sequence,
                  "length": length}
        return self._run(seed, settings, inputs, lambda loaded, solver, **kw: scaffold(
            loaded, solver, chains, contigs, num_designs, keep_motif_sequence=keep_motif_sequence, length=length,
            allow_long=allow_long, save_trajectory=save_trajectory, on_batch=on_batch, **kw))

    def save(self, result: DesignSet, out_folder: str | Path, *, mmcif: bool = False, overwrite: bool = False,
             viewer: bool = True, command: list[str] | None = None, status: str = "complete") -> Path:
        """Write a run folder (structures, FASTA, designs.csv, run.json, viewer.html) for ``result``.

        ``status`` goes to run.json: "complete", or what stopped a run whose finished designs these
        are (``SamplingInterrupted.result``, ``SamplingFailed.result``)."""
        settings = dict(result.settings)
        run_info = {
            "status": status, "command": command if command is not None else list(sys.argv),
            "checkpoint": {"path": str(self.loaded.path), "sha256": self.loaded.sha256, "meta": self.loaded.meta},
            "device": str(self.device), "settings": settings,
        }
        return write_run(result, out_folder, run_info=run_info, temperature=float(settings.get("temperature", 0.0)),
                         seed=int(settings.get("seed", 0)), model=self.model_label, mmcif=mmcif,
                         overwrite=overwrite, viewer=viewer)
