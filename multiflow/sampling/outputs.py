"""Design records and the run folder they are written to.

A run folder (written under a temporary name beside ``out_folder`` and renamed into place only
when everything is written, so a folder that exists is complete)::

    <out_folder>/
      run.json              resolved settings, inputs, seed, checkpoint path + sha256, package version,
                            command line, timestamps, what was resolved from the inputs, status
      designs.csv           one row per design: name, task, id, sequence, metrics, file paths
      seqs/<target>.fa      ProteinMPNN-style FASTA (native first for inverse folding; chains joined by '/')
      structures/<name>.pdb one file per design (.cif with mmcif=True)
      trajectories/<name>_traj.pdb   multi-model PDB of x_t (only with save_trajectory)
      viewer.html           self-contained 3D viewer (when multiflow.evaluation.viz is available)
      DONE                  written last, before the rename

FASTA headers follow ProteinMPNN's ``key=value`` style: ``>name, id=1, T=0.1, seed=7, score=0.84,
seq_rec=0.47, model=cpu_small@1a2b3c4d5e6f``; the native's header carries its score and the
designed/fixed chains. ``score`` is the mean NLL in nats (see :mod:`multiflow.sampling.tasks`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiflow import __version__
from multiflow.data.chain import ProteinChain
from multiflow.data.io import _atomic_write, write_fasta, write_trajectory_pdb
from multiflow.errors import ConfigError

MAX_VIEWER_DESIGNS = 200  # designs shown in viewer.html (the page inlines every structure)
_HEADER_METRICS = {  # FASTA header keys per task, after id/T/seed
    "codesign": ("score", "mean_plddt"),
    "inverse_fold": ("score", "seq_rec"),
    "fold": ("score", "mean_plddt"),
    "scaffold": ("score", "motif_ca_rmsd", "motif_bb_rmsd"),
}


@dataclass(frozen=True, eq=False)
class Design:
    """One design: chains (atom37, Å), metrics, and per-residue annotations over all chains in order."""

    name: str
    chains: tuple[ProteinChain, ...]
    task: str  # "codesign" | "inverse_fold" | "fold" | "scaffold" | "native"
    metrics: dict[str, Any] = field(default_factory=dict)
    designed: np.ndarray | None = None  # [N] bool, amino acid sampled here (None: none)
    motif: np.ndarray | None = None  # [N] bool, structure held at the input (None: none)
    confidence: np.ndarray | None = None  # [N] model confidence 0-100, None if the model has none
    trajectory: tuple[tuple[ProteinChain, ...], ...] | None = None  # x_t frames, final sequence

    @property
    def sequence(self) -> str:
        """One-letter sequence, chains joined with '/'."""
        return "/".join(c.sequence for c in self.chains)

    @property
    def length(self) -> int:
        return sum(c.length for c in self.chains)

    def to_pdb(self, path: str | Path) -> Path:
        from multiflow.data.io import write_pdb

        return write_pdb(list(self.chains), path)

    def to_mmcif(self, path: str | Path) -> Path:
        from multiflow.data.io import write_mmcif

        return write_mmcif(list(self.chains), path)

    def to_pdb_string(self) -> str:
        from multiflow.data.io import pdb_string

        return pdb_string(list(self.chains))

    @classmethod
    def from_pdb(cls, path: str | Path, chains: str | Sequence[str] | None = None) -> Design:
        """A structure file (PDB/mmCIF) as a Design record (task ``"native"``)."""
        from multiflow.data.io import read_structure

        records = read_structure(path, chains=chains)
        return cls(name=records[0].name, chains=tuple(records), task="native")

    def __repr__(self) -> str:
        seq = self.sequence if len(self.sequence) <= 30 else self.sequence[:27] + "..."
        return f"Design(name={self.name!r}, task={self.task!r}, length={self.length}, sequence={seq!r})"


@dataclass(frozen=True)
class DesignSet(Sequence):
    """The designs of one call, with the native (inverse folding) and what was resolved from the inputs."""

    task: str
    designs: tuple[Design, ...]
    native: Design | None = None
    report: dict[str, Any] = field(default_factory=dict)  # resolved residues, dropped residues, notes
    settings: dict[str, Any] = field(default_factory=dict)  # sampler settings, seed and inputs (set by the API)

    def __len__(self) -> int:
        return len(self.designs)

    def __getitem__(self, i):  # type: ignore[override]
        return self.designs[i]

    def __iter__(self) -> Iterator[Design]:
        return iter(self.designs)



# --- the run folder ----------------------------------------------------------------------------------
def check_out_folder(out_folder: str | Path, overwrite: bool = False) -> Path:
    """Refuse before any work is done if ``out_folder`` holds something we would clobber."""
    out = Path(out_folder)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out_folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out_folder {out} exists and is not empty; choose a new folder or pass --overwrite")
        if not (out / "run.json").is_file():
            raise ConfigError(f"--out_folder {out} is not a multiflow run folder (no run.json); refusing to replace it")
    ancestor = out.parent.resolve()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create --out_folder {out}: {ancestor} is not a writable folder")
    return out


@contextmanager
def staged_folder(out_folder: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling folder renamed to ``out_folder`` on success, removed on failure."""
    out = check_out_folder(out_folder, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.is_dir() and any(out.iterdir()):
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        elif out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def model_label(path: str | Path, sha256: str) -> str:
    """``<checkpoint stem>@<first 12 hex of its sha256>`` (names the weights in FASTA headers)."""
    return f"{Path(path).stem}@{sha256[:12]}"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if np.isfinite(value) else "nan"
    return str(value)


def fasta_records(result: DesignSet, *, temperature: float, seed: int, model: str) -> list[tuple[str, str]]:
    """(header, sequence) pairs in ProteinMPNN's key=value style; the native first if there is one."""
    records = []
    if result.native is not None:
        r = result.report
        header = (f"{result.native.name}, score={_fmt(result.native.metrics.get('score'))}, "
                  f"designed_chains={r.get('designed_chains', [])}, fixed_chains={r.get('fixed_chains', [])}, "
                  f"model={model}, seed={seed}")
        records.append((header, result.native.sequence))
    keys = _HEADER_METRICS.get(result.task, ("score",))
    for i, d in enumerate(result.designs):
        parts = [d.name, f"id={d.metrics.get('id', i + 1)}", f"T={temperature:g}", f"seed={seed}"]
        parts += [f"{k}={_fmt(d.metrics.get(k))}" for k in keys if k in d.metrics and d.metrics[k] is not None]
        parts.append(f"model={model}")
        records.append((", ".join(parts), d.sequence))
    return records


@dataclass
class RunFiles:
    """Paths (relative to the run folder) written for a run."""

    fasta: str = ""
    structures: list[str] = field(default_factory=list)
    trajectories: list[str | None] = field(default_factory=list)
    viewer: str | None = None
    viewer_note: str = ""


def write_run(result: DesignSet, out_folder: str | Path, *, run_info: dict[str, Any], temperature: float, seed: int,
              model: str, mmcif: bool = False, overwrite: bool = False, viewer: bool = True) -> Path:
    """Write every file of a run (see the module docstring) and return the run folder."""
    names = [d.name for d in result.designs]
    if len(set(names)) != len(names):
        raise ConfigError(f"design names are not unique: {sorted({n for n in names if names.count(n) > 1})[:5]}")
    started = time.time()
    with staged_folder(out_folder, overwrite) as tmp:
        files = _write_files(result, tmp, temperature=temperature, seed=seed, model=model, mmcif=mmcif)
        if viewer:
            files.viewer, files.viewer_note = _write_viewer(result, tmp / "viewer.html")
        _write_csv(result, files, tmp / "designs.csv", seed)
        info = {
            "status": "complete", **run_info, "task": result.task, "seed": seed, "package_version": __version__,
            "num_designs": len(result.designs), "report": result.report,
            "native": None if result.native is None else {"name": result.native.name, **result.native.metrics,
                                                          "sequence": result.native.sequence},
            "files": {"fasta": files.fasta, "structures": "structures/", "designs_csv": "designs.csv",
                      "trajectories": "trajectories/" if any(files.trajectories) else None,
                      "viewer": files.viewer, "viewer_note": files.viewer_note},
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "write_seconds": round(time.time() - started, 3),
        }
        _atomic_write(tmp / "run.json", json.dumps(info, indent=2, default=_json_default) + "\n")
        _atomic_write(tmp / "DONE", f"{info['written_at']}\n")
    return Path(out_folder)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(np.asarray(list(value)).tolist()) if not isinstance(value, np.ndarray) else value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _write_files(result: DesignSet, root: Path, *, temperature: float, seed: int, model: str,
                 mmcif: bool) -> RunFiles:
    files = RunFiles()
    (root / "seqs").mkdir()
    (root / "structures").mkdir()
    target = result.report.get("target") or result.task
    files.fasta = f"seqs/{target}.fa"
    write_fasta(fasta_records(result, temperature=temperature, seed=seed, model=model), root / files.fasta)
    for d in result.designs:
        rel = f"structures/{d.name}.{'cif' if mmcif else 'pdb'}"
        (d.to_mmcif if mmcif else d.to_pdb)(root / rel)
        files.structures.append(rel)
        traj = None
        if d.trajectory is not None:
            (root / "trajectories").mkdir(exist_ok=True)
            traj = f"trajectories/{d.name}_traj.pdb"
            write_trajectory_pdb([list(frame) for frame in d.trajectory], root / traj)
        files.trajectories.append(traj)
    return files


def metric_columns(designs: Sequence[Design]) -> list[str]:
    """Metric keys in first-seen order over the designs."""
    return list(dict.fromkeys(k for d in designs for k in d.metrics))


def _write_csv(result: DesignSet, files: RunFiles, path: Path, seed: int) -> None:
    metrics = [k for k in metric_columns(result.designs) if k != "id"]
    header = ["name", "task", "id", "seed", "length", "sequence", *[m for m in metrics if m != "length"],
              "structure", "trajectory"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, d in enumerate(result.designs):
        row = [d.name, d.task, d.metrics.get("id", i + 1), seed, d.length, d.sequence]
        row += [_fmt(d.metrics.get(m)) for m in metrics if m != "length"]
        row += [files.structures[i], files.trajectories[i] or ""]
        writer.writerow(row)
    _atomic_write(path, buffer.getvalue())


def _write_viewer(result: DesignSet, path: Path) -> tuple[str | None, str]:
    """viewer.html via multiflow.evaluation.viz (if installed); returns (relative path or None, note)."""
    try:
        from multiflow.evaluation.viz import DesignView, render_html
    except ImportError as err:  # integration point: the viewer module is optional
        return None, f"not written: multiflow.evaluation.viz is not available ({err})"
    shown = list(result.designs[:MAX_VIEWER_DESIGNS])
    views = [DesignView.from_chain(list(d.chains), name=d.name, confidence=d.confidence, motif=d.motif,
                                   metrics={k: v for k, v in d.metrics.items() if not isinstance(v, (list, dict))})
             for d in shown]
    color = ("motif" if any(d.motif is not None for d in shown)
             else "confidence" if any(d.confidence is not None for d in shown) else "chain")
    render_html(views, path, title=f"multiflow {result.task}: {len(result.designs)} designs", color_by=color)
    note = "" if len(shown) == len(result.designs) else f"shows the first {len(shown)} of {len(result.designs)} designs"
    return path.name, note
