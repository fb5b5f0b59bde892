"""What ``multiflow evaluate`` scores: the designs of an input folder and the reference set.

Input: a multiflow run folder (``designs.csv`` + ``structures/``; each design's co-designed
sequence is the one in its structure file) or any folder of PDB/mmCIF files (``.gz`` allowed; the
sequence is read from the file). Every protein chain is one design (``<file>_<chain>`` when a file
has several); names are made unique because they name the per-design record files. An unreadable
file is reported as skipped, never fatal; a missing, non-folder or empty input raises
:class:`InputError`.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from multiflow.data.chain import ProteinChain
from multiflow.data.io import CIF_SUFFIXES, PDB_SUFFIXES, read_structure
from multiflow.errors import ConfigError, MultiflowError

logger = logging.getLogger(__name__)

STRUCTURE_SUFFIXES = tuple(s + gz for s in PDB_SUFFIXES + CIF_SUFFIXES for gz in ("", ".gz"))


class InputError(MultiflowError):
    """The input folder is missing, not a folder, or holds nothing to evaluate."""


@dataclass
class Entry:
    """One design to evaluate."""

    name: str
    chain: ProteinChain
    source: str  # file path relative to the input folder


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._") or "design"


def _chains_of(path: Path, base: str, root: Path) -> list[Entry]:
    chains = read_structure(path)
    if not chains:
        raise ConfigError(f"{path}: no protein chain")
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    if len(chains) == 1:
        return [Entry(_safe(base), chains[0], rel)]
    return [Entry(_safe(f"{base}_{c.chain_id}"), c, rel) for c in chains]


def structure_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(STRUCTURE_SUFFIXES)
                  and not p.name.startswith("."))


def _listed_items(folder: Path, kind: str) -> list[tuple[str, Path | None, str]]:
    """(name, structure file or None, sequence in designs.csv or "") per listed design."""
    if kind == "run":
        with open(folder / "designs.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        items = []
        for i, row in enumerate(rows):
            rel = (row.get("structure") or "").strip()
            name = (row.get("name") or "").strip() or f"design{i + 1}"
            items.append((name, folder / rel if rel else None, (row.get("sequence") or "").strip()))
        return items
    items = [(p.name[:-3] if p.name.lower().endswith(".gz") else p.name, p, "") for p in structure_files(folder)]
    return [(n.rsplit(".", 1)[0], p, s) for n, p, s in items]


def collect_inputs(folder: Path) -> tuple[str, list[Entry], list[dict[str, str]]]:
    """(``"run"`` or ``"structures"``, designs, skipped inputs with reasons). Raises :class:`InputError`."""
    if not folder.exists():
        raise InputError(f"input folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"input {folder} is not a folder; give a run folder or a folder of PDB/mmCIF files")
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    kind = "run" if (folder / "designs.csv").is_file() else "structures"
    items = _listed_items(folder, kind)
    if not items:
        if (folder / "targets.csv").is_file():  # inverse-fold --pdb_path_multi: one run folder per target
            raise InputError(f"{folder} holds one inverse-folding run per target (targets.csv); evaluate a "
                             f"target's folder, e.g. {folder}/<target>")
        what = "designs.csv lists no designs" if kind == "run" else f"no PDB/mmCIF files ({', '.join(PDB_SUFFIXES + CIF_SUFFIXES)}, .gz allowed)"
        raise InputError(f"nothing to evaluate in {folder}: {what}")
    for name, path, csv_sequence in items:
        try:
            if path is None:
                raise ConfigError("designs.csv gives no structure file")
            found = _chains_of(path, name, folder)
            if csv_sequence and "/".join(e.chain.sequence for e in found) != csv_sequence:
                logger.warning("%s: the sequence in designs.csv differs from the structure file; using the file's", name)
            entries.extend(found)
        except (MultiflowError, OSError, ValueError) as err:
            skipped.append({"input": name, "file": str(path), "reason": f"{type(err).__name__}: {err}"})
    names = [e.name for e in entries]
    for e in entries:  # names must be unique: they name the per-design files
        if names.count(e.name) > 1:
            e.name = _safe(f"{e.name}_{hashlib.sha256(e.source.encode()).hexdigest()[:6]}")
    return kind, entries, skipped


def has_real_sequence(sequence: str) -> bool:
    """A co-designed / native sequence worth folding: no unknown residues, not one repeated letter (a bare backbone)."""
    return bool(sequence) and "X" not in sequence and len(set(sequence)) > 1


def read_references(folder: Path) -> list[ProteinChain]:
    """Every readable protein chain of the PDB/mmCIF files in ``folder`` (unreadable files are logged)."""
    if not folder.is_dir():
        raise InputError(f"--reference {folder} is not a folder")
    refs = []
    for path in structure_files(folder):
        try:
            refs.extend(read_structure(path))
        except (MultiflowError, OSError, ValueError) as err:
            logger.warning("reference %s skipped: %s", path, err)
    if not refs:
        raise InputError(f"--reference {folder} holds no readable PDB/mmCIF structure")
    return refs
