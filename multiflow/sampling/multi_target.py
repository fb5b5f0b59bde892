"""``multiflow inverse-fold --pdb_path_multi targets.json``: one command, many structures.

LigandMPNN's convention: ``--pdb_path_multi`` names a JSON file whose keys (or list items) are
structure paths (a text file with one path per line works too; relative paths are read from the
current folder), and ``--fixed_residues_multi`` / ``--redesigned_residues_multi`` are JSON objects
from those paths (or the targets' names) to residue lists. Every other flag applies to every target.

The run folder::

    <out_folder>/
      run.json          status (running, complete, complete with failures, interrupted), the command,
                        checkpoint, seed and one entry per target (status, designs, error)
      targets.csv       the same, one row per target
      all_seqs.fa       every target's FASTA (native first, then its designs), one after the other
      <target>/         a complete single-target run folder (run.json, seqs/, structures/, ...)
      DONE              written last

Each target's folder is written as soon as that target is finished and the summary is rewritten
after every target, so a job stopped by Ctrl-C, SIGTERM or a crash keeps everything finished. A
target that fails (unreadable file, unknown chain, an error while sampling) is recorded with its
reason and the job goes on to the next; the exit code is 1 if any target failed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiflow.errors import ConfigError, SamplingFailed, SamplingInterrupted, Terminated, describe_error

SUMMARY_COLUMNS = ("target", "file", "status", "designs", "mean_seq_rec", "best_score", "folder", "error")
TABLE_COLUMNS = ("target", "status", "designs", "mean_seq_rec", "best_score", "error")  # printed at the end


def read_target_list(path: Path) -> list[str]:
    """Structure paths from a JSON object (keys), a JSON list, or a text file (one per line, '#' comments)."""
    from multiflow.sampling.inputs import read_json

    if str(path).endswith(".json"):
        data = read_json(path, "--pdb_path_multi")
        if not isinstance(data, (dict, list)) or not all(isinstance(k, str) for k in data):
            raise ConfigError(f"--pdb_path_multi {path}: expected a JSON object whose keys are structure paths "
                              '(LigandMPNN style, {"a.pdb": ""}) or a JSON list of paths')
        targets = list(data)
    else:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"--pdb_path_multi {path}: cannot read it ({err.strerror or err})") from err
        targets = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not targets:
        raise ConfigError(f"--pdb_path_multi {path} lists no structures")
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    if repeated:
        raise ConfigError(f"--pdb_path_multi {path} lists {repeated[0]!r} more than once")
    return targets


def read_per_target(path: Path | None, flag: str, targets: list[str], names: dict[str, str]) -> dict[str, str]:
    """``{target path: residues}`` from a JSON object keyed by target path or target name."""
    from multiflow.sampling.inputs import read_json

    if path is None:
        return {}
    data = read_json(path, flag)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'{flag} {path}: expected a JSON object {{"<structure path or name>": "A12 A13 B42C"}}')
    by_name = {name: target for target, name in names.items()}
    out = {}
    for key, residues in data.items():
        target = key if key in names else by_name.get(key)
        if target is None:
            raise ConfigError(f"{flag} {path}: {key!r} is not one of the --pdb_path_multi targets "
                              f"(by path or name; e.g. {targets[0]!r})")
        out[target] = residues
    return out


def target_names(targets: list[str]) -> dict[str, str]:
    """A unique, file-name-safe folder name per target: the file name without .pdb/.cif/.gz."""
    from multiflow.data.io import CIF_SUFFIXES, PDB_SUFFIXES
    from multiflow.sampling.inputs import safe_name, unique_names

    stems = []
    for t in targets:
        stem = Path(t).name.removesuffix(".gz")
        suffix = next((x for x in PDB_SUFFIXES + CIF_SUFFIXES if stem.lower().endswith(x)), "")
        stems.append((safe_name(stem[: len(stem) - len(suffix)]) or "target", t))
    return {t: name for name, t in unique_names(stems)}


@dataclass(frozen=True)
class MultiTargets:
    """The targets of ``--pdb_path_multi`` and their per-target residue selections, read before any model loads."""

    targets: list[str]  # structure paths as written in the list
    names: dict[str, str]  # target path -> folder name
    fixed: dict[str, str]  # target path -> --fixed_residues for that target
    redesigned: dict[str, str]  # target path -> --redesigned_residues for that target

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MultiTargets:
        if args.pdb_path is not None:
            raise ConfigError("give --pdb_path (one structure) or --pdb_path_multi (a list of them), not both")
        targets = read_target_list(args.pdb_path_multi)
        names = target_names(targets)
        return cls(targets, names,
                   read_per_target(args.fixed_residues_multi, "--fixed_residues_multi", targets, names),
                   read_per_target(args.redesigned_residues_multi, "--redesigned_residues_multi", targets, names))

    def target_args(self, args: argparse.Namespace, target: str) -> argparse.Namespace:
        """The single-target flags for ``target``: its path and selections, everything else as given."""
        return argparse.Namespace(**{**vars(args), "pdb_path": Path(target),
                                     "fixed_residues": self.fixed.get(target, args.fixed_residues),
                                     "redesigned_residues": self.redesigned.get(target, args.redesigned_residues)})


class Summary:
    """The run-level run.json and targets.csv, rewritten atomically after every target."""

    def __init__(self, out: Path, info: dict[str, Any]) -> None:
        self.out, self.info, self.rows = out, info, []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append({k: row.get(k) for k in SUMMARY_COLUMNS})
        self.write("running")

    def write(self, status: str) -> None:
        from multiflow.data.io import _atomic_write

        info = {"status": status, **self.info, "targets": self.rows,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _atomic_write(self.out / "run.json", json.dumps(info, indent=2) + "\n")
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if row[k] is None else row[k] for k in SUMMARY_COLUMNS} for row in self.rows)
        _atomic_write(self.out / "targets.csv", text.getvalue())
        fastas = [f for row in self.rows if row["folder"] for f in sorted((self.out / row["folder"] / "seqs").glob("*.fa"))]
        _atomic_write(self.out / "all_seqs.fa", "".join(f.read_text() for f in fastas))

    def print_table(self, title: str, max_rows: int = 30) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{title} (targets.csv)")
        for col in TABLE_COLUMNS:
            table.add_column(col, overflow="fold" if col == "error" else "ellipsis")
        for row in self.rows[:max_rows]:
            table.add_row(*("" if row[k] is None else str(row[k]) for k in TABLE_COLUMNS))
        if len(self.rows) > max_rows:
            table.add_row(f"... {len(self.rows) - max_rows} more", *[""] * (len(TABLE_COLUMNS) - 1))
        Console().print(table)


def _row(target: str, name: str, result: Any, folder: Path | None, status: str, error: str | None) -> dict[str, Any]:
    designs = list(result) if result is not None else []
    recs = [d.metrics.get("seq_rec") for d in designs if d.metrics.get("seq_rec") is not None]
    scores = [d.metrics["score"] for d in designs if d.metrics.get("score") is not None]
    return {"target": name, "file": target, "status": status, "designs": len(designs),
            "mean_seq_rec": round(sum(recs) / len(recs), 4) if recs else None,
            "best_score": min(scores) if scores else None,
            "folder": folder.name if folder is not None else None, "error": error}


def run_inverse_multi(multi: MultiTargets, args: argparse.Namespace, model: Any, out: Path, save: dict[str, Any],
                      seed: int, design: Callable[[argparse.Namespace], Any]) -> int:
    """Inverse-fold every target into ``out/<name>/`` (``design(target_args) -> DesignSet``); see the
    module docstring. Returns the exit code."""
    old = None
    if out.is_dir() and any(out.iterdir()):  # --overwrite (checked): keep the old run until this one is done
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(out, {"command": save["command"], "seed": seed, "num_targets": len(multi.targets),
                            "checkpoint": {"path": str(model.loaded.path), "sha256": model.loaded.sha256}})
    summary.write("running")
    save = {**save, "overwrite": False}
    failed = 0
    for i, target in enumerate(multi.targets):
        name = multi.names[target]
        print(f"[{i + 1}/{len(multi.targets)}] {target} -> {out / name}")
        try:
            result = design(multi.target_args(args, target))
            model.save(result, out / name, **save)
            summary.add(_row(target, name, result, out / name, "complete", None))
        except (SamplingInterrupted, SamplingFailed) as stop:  # keep the target's finished batches
            folder = None
            if stop.result is not None and len(stop.result):
                folder = model.save(stop.result, out / name, status=f"interrupted: {stop}", **save)
            interrupted = isinstance(stop, SamplingInterrupted)
            summary.add(_row(target, name, stop.result, folder, "interrupted" if interrupted else "failed", str(stop)))
            if interrupted:
                return _stopped(summary, stop.__cause__)
            failed += 1
        except KeyboardInterrupt as stop:
            summary.add(_row(target, name, None, None, "interrupted", "stopped before any design of it finished"))
            return _stopped(summary, stop)
        except Exception as err:  # noqa: BLE001 - one bad target must not stop the others
            reason = describe_error(err)
            where = "" if reason.startswith(target) else f"{target}: "
            print(f"error: {where}{reason}; going on with the next target", file=sys.stderr)
            typed = reason if reason.startswith(f"{type(err).__name__}: ") else f"{type(err).__name__}: {reason}"
            summary.add(_row(target, name, None, None, "failed", typed))
            failed += 1
    summary.write("complete" if not failed else f"complete with {failed} failed target(s)")
    (out / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    summary.print_table(f"{len(multi.targets) - failed} of {len(multi.targets)} targets designed in {out}")
    if failed:
        print(f"{failed} target(s) failed; targets.csv gives each reason", file=sys.stderr)
        return 1
    return 0


def _stopped(summary: Summary, cause: BaseException | None) -> int:
    summary.write("interrupted")
    print(f"stopped; the finished targets are in {summary.out} (targets.csv lists them)", file=sys.stderr)
    return 143 if isinstance(cause, Terminated) else 130
