"""Model checkpoints for inference: export a slim file from a Lightning checkpoint, load it back.

A slim checkpoint is a ``torch.save`` dict::

    {"format": "multiflow-model/1", "config": <resolved run config>, "state_dict": <denoiser weights>,
     "meta": {"global_step", "source", "package_version", ...}}

Lightning checkpoints (``*.ckpt`` from ``multiflow train``) load too; with EMA enabled their
``state_dict`` already holds the averaged weights (Lightning's EMAWeightAveraging swaps them in).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from multiflow import __version__
from multiflow.errors import MissingWeightsError
from multiflow.flows.interpolant import Interpolant
from multiflow.models.flow_model import DenoiserFlowModel

FORMAT = "multiflow-model/1"
_PREFIX = "model.denoiser."  # where the denoiser's weights sit inside the Lightning module


@dataclass(frozen=True)
class LoadedModel:
    model: DenoiserFlowModel  # in eval mode, on the requested device
    interpolant: Interpolant  # the flows the model was trained with (priors, schedules, noise)
    config: dict[str, Any]  # resolved run config
    path: Path
    sha256: str  # of the checkpoint file, for run provenance
    meta: dict[str, Any]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingWeightsError(
            f"model checkpoint {path} not found; pass the path of a file written by `multiflow train` "
            "(runs/<run>/checkpoints/*.ckpt) or by multiflow.training.checkpoint.export_checkpoint"
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise MissingWeightsError(f"cannot read checkpoint {path}: {err}") from err
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return raw
    if isinstance(raw, dict) and "state_dict" in raw and "multiflow_config" in raw:
        state = {k[len(_PREFIX):]: v for k, v in raw["state_dict"].items() if k.startswith(_PREFIX)}
        meta = {"global_step": raw.get("global_step"), "source": str(path)}
        return {"format": FORMAT, "config": raw["multiflow_config"], "state_dict": state, "meta": meta}
    raise MissingWeightsError(f"{path} is not a multiflow checkpoint (no model config and weights inside)")


def export_checkpoint(source: str | Path, out: str | Path, **meta: Any) -> Path:
    """Write a slim inference checkpoint (config + denoiser weights, no optimiser state) atomically."""
    data = _read(Path(source))
    data["meta"] = {**data.get("meta", {}), "package_version": __version__, **meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(data, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shipped model must be readable by everyone
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_checkpoint(path: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    from multiflow.training.builders import build_denoiser, build_interpolant

    path = Path(path)
    data = _read(path)
    config = data["config"]
    model = DenoiserFlowModel(build_denoiser(config["model"]))
    try:
        missing, unexpected = model.denoiser.load_state_dict(data["state_dict"], strict=False)
    except RuntimeError as err:  # parameter shapes differ from the model this code builds
        first = str(err).strip().splitlines()[-1].strip()
        raise MissingWeightsError(
            f"checkpoint {path} does not fit this version of the model ({first}); "
            "re-export it with this version or use a matching multiflow version"
        ) from None
    if missing or unexpected:
        raise MissingWeightsError(
            f"checkpoint {path} does not match its model config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.eval().to(resolve_device(device))
    return LoadedModel(model, build_interpolant(config["flows"]), config, path, file_sha256(path), data.get("meta", {}))
