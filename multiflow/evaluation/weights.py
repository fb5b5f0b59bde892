"""Where evaluation models keep their weights, and optional dependencies imported on demand.

Nothing here downloads anything. Weights live under one folder, ``$MULTIFLOW_WEIGHTS``
(default ``~/.cache/multiflow/weights``), one sub-folder or file per model:

    $MULTIFLOW_WEIGHTS/esmfold_v1/           Hugging Face ESMFold: config.json + model.safetensors
    $MULTIFLOW_WEIGHTS/esm2_t33_650M_UR50D.pt fair-esm ESM2 checkpoint (+ -contact-regression.pt, optional)

Every loader also takes an explicit path, which wins over this default.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from multiflow.errors import MultiflowError

WEIGHTS_ENV: str = "MULTIFLOW_WEIGHTS"
"""Environment variable naming the folder that holds model weights."""


class MissingDependencyError(MultiflowError, ImportError):
    """An optional package needed for this feature is not installed; the message says how to install it."""


def weights_root() -> Path:
    """``$MULTIFLOW_WEIGHTS`` when set, else ``~/.cache/multiflow/weights`` (not created here)."""
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multiflow" / "weights"


def default_weights_path(name: str) -> Path:
    """The default location of the weights called ``name`` (a folder or a file) under :func:`weights_root`."""
    return weights_root() / name


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_module(name: str, *, purpose: str, install: str) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependencyError` saying what needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{name}', which is not installed ({err}). Install it with: {install}"
        ) from err
