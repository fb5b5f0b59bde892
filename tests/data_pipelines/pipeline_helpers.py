"""Helpers for the preprocessing pipeline tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from data_pipelines.preprocess import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = ("1JEK_A.pdb.gz", "4PNO_A.pdb.gz", "4YU8_A.pdb.gz")  # three real chains (CC0), 40, 42 and 40 residues


def run(*args: str | Path) -> int:
    """The CLI in-process, without a progress bar."""
    return main([str(a) for a in args] + ["--no-progress"])


def metadata(out: Path) -> list[dict[str, str]]:
    with open(out / "metadata.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def failures(out: Path) -> list[dict[str, str]]:
    with open(out / "failures.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def journal_sources(out: Path) -> list[list[str]]:
    """Per journal file (one per run, in order), the sources it recorded (a half-written line skipped)."""
    runs = []
    for path in sorted((out / "journal").glob("*.jsonl")):
        sources = []
        for line in path.read_text().splitlines():
            try:
                sources.append(json.loads(line)["source"])
            except ValueError:
                pass
        runs.append(sources)
    return runs
