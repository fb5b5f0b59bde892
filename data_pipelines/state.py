"""The output folder's state: append-only journals, and the snapshot files built from them.

Every run appends one JSON line per finished source to ``journal/<NNNNN>-<time>.jsonl`` (flushed
per line, after the source's npz files were atomically written). The journals are the source of
truth: ``metadata.csv``, ``failures.tsv`` and ``splits/`` are snapshots rebuilt from them (at the
end of a run, on Ctrl-C, and periodically) and replaced atomically. A run killed with ``kill -9``
therefore loses only sources still in flight; the next run, even one with nothing left to do,
rebuilds the snapshots. A half-written last journal line is ignored (that source is redone).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from data_pipelines.records import METADATA_COLUMNS, SourceResult

JOURNAL_DIR = "journal"
MANAGED = ("metadata.csv", "failures.tsv", "options.json", JOURNAL_DIR, "examples", "splits")
"""Everything the pipeline writes in the output folder (and all that ``--overwrite`` removes)."""


class Journal:
    """This run's append-only journal file, created at the first record (a no-op run leaves none)."""

    def __init__(self, out: Path) -> None:
        self.folder = out / JOURNAL_DIR
        self._handle = None

    def append(self, result: SourceResult) -> None:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            names = [p.name.split("-")[0] for p in self.folder.glob("*.jsonl")]
            number = max((int(n) for n in names if n.isdigit()), default=0) + 1
            path = self.folder / f"{number:05d}-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
            self._handle = open(path, "a", encoding="utf-8")
        self._handle.write(json.dumps(asdict(result), separators=(",", ":")) + "\n")
        self._handle.flush()  # survives the process being killed; fsync at close for power loss

    def close(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


def load_records(out: Path) -> tuple[dict[str, SourceResult], int]:
    """Latest record per source path over all journals, and the number of unreadable lines."""
    records: dict[str, SourceResult] = {}
    bad = 0
    folder = out / JOURNAL_DIR
    paths = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    data = json.loads(line)
                    data["issues"] = [tuple(issue) for issue in data["issues"]]
                    record = SourceResult(**data)
                except (ValueError, TypeError, KeyError):
                    bad += 1  # e.g. the last line of a run killed mid-write
                    continue
                records[record.source] = record
    return records, bad


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_snapshot(out: Path, records: dict[str, SourceResult], splitter) -> Counter:
    """Rewrite metadata.csv, failures.tsv and splits/*.txt from ``records``; split counts back."""
    rows, seen = [], set()
    for record in records.values():
        for row in record.rows:
            if row["example_id"] not in seen:  # stems are unique per source, so this never drops
                seen.add(row["example_id"])
                rows.append({**row, "split": splitter(row)})
    rows.sort(key=lambda r: r["example_id"])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(METADATA_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "metadata.csv", buffer.getvalue())

    lines = ["source_path\tchain_id\treason"]
    for source in sorted(records):
        for chain_id, _, reason in records[source].issues:
            lines.append("\t".join(_one_line(x) for x in (source, chain_id, reason)))
    atomic_write_text(out / "failures.tsv", "\n".join(lines) + "\n")

    counts = Counter(row["split"] for row in rows)
    split_dir = out / "splits"
    split_dir.mkdir(exist_ok=True)
    for name in counts:
        if name:
            ids = [row["example_id"] for row in rows if row["split"] == name]
            atomic_write_text(split_dir / f"{name}.txt", "\n".join(ids) + "\n")
    for stale in split_dir.glob("*.txt"):  # a split that no longer exists
        if stale.stem not in counts:
            stale.unlink()
    return counts


def clear_outputs(out: Path) -> None:
    """Remove what the pipeline wrote (nothing else in the folder)."""
    for name in MANAGED:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_temp_files(out: Path) -> int:
    """Delete temporary files left by a killed run (``.<name>.<random>.tmp``); their count."""
    count = 0
    for folder in (out, out / "examples", out / "splits"):
        pattern = "*/.*.tmp" if folder.name == "examples" else ".*.tmp"
        if folder.is_dir():
            for tmp in folder.glob(pattern):
                tmp.unlink(missing_ok=True)
                count += 1
    return count
