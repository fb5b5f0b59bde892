"""The per-design record cache of ``multiflow evaluate``: ``<out>/designs/<name>.json``.

Each finished design is stored with the hash of the settings it was scored with (oracle labels,
number of sequences, temperature, seed, ... — see ``Oracles.settings_key``) and a digest of its
input chain (sequence and atoms). A rerun reuses a record only when both match, so changed
settings or a changed input file are scored again, and an interrupted evaluation resumes where
it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from multiflow.data.chain import ProteinChain
from multiflow.data.io import atomic_write
from multiflow.evaluation.inputs import Entry

RECORD_FORMAT = "multiflow-eval-record/1"


def settings_hash(settings: dict[str, Any]) -> str:
    """16 hex digits identifying the settings a record was scored with (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _chain_digest(chain: ProteinChain) -> str:
    h = hashlib.sha256(chain.sequence.encode())
    h.update(np.ascontiguousarray(chain.atom_positions, np.float32).tobytes())
    h.update(np.ascontiguousarray(chain.atom_mask).tobytes())
    return h.hexdigest()[:24]


def _record_path(out: Path, name: str) -> Path:
    return out / "designs" / f"{name}.json"


def load_record(out: Path, entry: Entry, key: str) -> dict[str, Any] | None:
    """The stored record of ``entry`` if it was scored with settings ``key`` on the same input, else None."""
    path = _record_path(out, entry.name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = data.get("format") == RECORD_FORMAT and data.get("key") == key and data.get("input") == _chain_digest(entry.chain)
    return data["record"] if ok else None


def save_record(out: Path, entry: Entry, key: str, record: dict[str, Any]) -> None:
    """Store a finished design's record atomically (NaN/inf become null)."""
    from multiflow.evaluation.report import _clean_json

    data = {"format": RECORD_FORMAT, "key": key, "input": _chain_digest(entry.chain), "record": _clean_json(record)}
    atomic_write(_record_path(out, entry.name), json.dumps(data, indent=1, allow_nan=False) + "\n")
