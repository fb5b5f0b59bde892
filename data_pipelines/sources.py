"""Finding structure files and naming what comes out of them.

Inputs are folders (searched recursively, symlinks followed once), single files, and text
files listing paths (one per line; blank lines and ``#`` comments ignored; relative paths are
relative to the list's folder). Recognised suffixes: .pdb .ent .cif .mmcif .pdbx, each with an
optional .gz. A file named explicitly is tried whatever its suffix.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

STRUCTURE_SUFFIXES: tuple[str, ...] = (".pdb", ".ent", ".cif", ".mmcif", ".pdbx")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PDB_CODE = re.compile(r"^(?:pdb)?([0-9][A-Za-z0-9]{3})(?:$|[^A-Za-z0-9]|[A-Za-z0-9]$)")


@dataclass
class Discovery:
    """Structure files found (resolved absolute paths, sorted) and inputs that gave none."""

    files: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def is_structure_name(name: str) -> bool:
    lower = name.lower().removesuffix(".gz")
    return lower.endswith(STRUCTURE_SUFFIXES)


def file_stem(path: str | Path) -> str:
    """``1abc.cif.gz`` -> ``1abc``; ``1A12_C.pdb.gz`` -> ``1A12_C``."""
    name = Path(path).name
    name = name[:-3] if name.lower().endswith(".gz") else name
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def safe_name(text: str) -> str:
    """Filesystem-safe token: runs of characters other than ``A-Za-z0-9._-`` become ``_``."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "x"
    return cleaned[:100]


def pdb_code(stem: str) -> str:
    """The 4-character PDB code a file stem starts with (``pdb1abc`` and ``1abcA`` allowed), upper
    case; the stem itself when it does not look like one."""
    match = _PDB_CODE.match(stem)
    return match.group(1).upper() if match else stem


def shard_of(example_id: str) -> str:
    """Two hex characters spreading examples over 256 sub-folders."""
    return hashlib.sha1(example_id.encode()).hexdigest()[:2]


def discover(inputs: Iterable[str | Path], file_lists: Iterable[str | Path] = ()) -> Discovery:
    """All structure files named by ``inputs`` and ``file_lists``, without duplicates."""
    found = Discovery()
    seen: set[str] = set()
    entries: list[Path] = [Path(p) for p in inputs]
    for listing in file_lists:
        listing = Path(listing)
        try:
            lines = listing.read_text(errors="replace").splitlines()
        except OSError as err:
            found.problems.append((str(listing.absolute()), f"not-found: cannot read file list ({err.strerror})"))
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                entry = Path(line).expanduser()
                entries.append(entry if entry.is_absolute() else listing.parent / entry)
    for entry in entries:
        _add_entry(entry, found, seen)
    found.files.sort()
    return found


def _add_entry(entry: Path, found: Discovery, seen: set[str]) -> None:
    path = os.path.abspath(entry)
    if not os.path.lexists(path):
        found.problems.append((path, "not-found: no such file or folder"))
    elif os.path.isdir(path):
        before = len(found.files)
        _walk(Path(path), found, seen)
        if is_structure_name(entry.name):
            found.problems.append((path, "not-a-file: a folder named like a structure file; searched it as a folder"))
        elif len(found.files) == before:
            found.problems.append((path, f"no-structures: folder holds no {'/'.join(STRUCTURE_SUFFIXES)}[.gz] files"))
    elif path not in seen:  # an explicit file is tried whatever its name; broken symlinks fail later
        seen.add(path)
        found.files.append(path)


def _walk(root: Path, found: Discovery, seen: set[str]) -> None:
    visited: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop
            dirs[:] = []
            continue
        visited.add(real)
        dirs.sort()
        for name in dirs:
            if is_structure_name(name):
                found.problems.append((os.path.join(folder, name), "not-a-file: a folder named like a structure "
                                       "file; searched it as a folder"))
        for name in sorted(files):
            path = os.path.join(folder, name)
            if is_structure_name(name) and path not in seen:
                seen.add(path)
                found.files.append(path)


def assign_stems(paths: list[str], known: dict[str, str]) -> dict[str, str]:
    """A unique, filesystem-safe stem per source path (example ids are ``<stem>_<chain>``).

    ``known`` maps paths already processed to their stems and is respected. A new path whose
    safe stem is taken (two folders holding ``1abc.pdb``, or ``1abc.pdb`` next to ``1abc.cif``)
    gets ``<stem>-<8 hex of its path hash>``; stems are compared case-insensitively so ids stay
    distinct on case-insensitive filesystems.
    """
    taken = {stem.lower(): path for path, stem in known.items()}
    out: dict[str, str] = {}
    for path in paths:
        if path in known:
            out[path] = known[path]
            continue
        stem = safe_name(file_stem(path))
        if stem.lower() in taken and taken[stem.lower()] != path:
            stem = f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
        taken[stem.lower()] = path
        out[path] = stem
    return out


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
