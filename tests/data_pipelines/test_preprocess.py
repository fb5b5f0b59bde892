"""multiflow-preprocess end to end: broken inputs are logged (never fatal), filters, ids, outputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_pipelines.sources import assign_stems, discover, pdb_code
from multiflow.data.batch import ChainExample
from multiflow.data.features import FEATURE_KEYS
from multiflow.data.io import read_structure
from tests.data_pipelines.pipeline_helpers import FIXTURES, GOOD, failures, metadata, run


def pdb_text(name: str = "1JEK_A.pdb.gz") -> str:
    return gzip.decompress((FIXTURES / name).read_bytes()).decode()


def atom_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ATOM")]


def set_x(line: str, field: str) -> str:
    """An ATOM line with its x coordinate (columns 31-38) replaced by an 8-character field."""
    return line[:30] + f"{field:>8}" + line[38:]


def make_broken_inputs(folder: Path) -> dict[str, str]:
    """Broken files in ``folder``; returns file name -> how its failure reason must start."""
    good = pdb_text()
    lines = atom_lines(good)
    water = "HETATM    1  O   HOH W   1      10.000  10.000  10.000  1.00  0.00           O"
    hydrogen = "ATOM      1  H   ALA A   1       0.000   0.000   0.000  1.00  0.00           H"
    whole = gzip.compress(good.encode())
    files: dict[str, tuple[bytes | str, str]] = {
        "truncated.pdb.gz": (whole[: len(whole) // 2], "corrupt-gzip: gzip data is truncated or corrupt"),
        "empty.pdb": ("", "empty: the file has 0 bytes"),
        "junk.cif": (bytes(range(256)) * 8, "binary: the file is binary data"),
        "waters.pdb": (water + "\nEND\n", "no-protein: the file has no amino-acid residues (only HOH)"),
        "nan.pdb": ("\n".join([set_x(lines[0], "nan")] + lines[1:]) + "\nEND\n", "nan-coordinates: NaN/inf coordinates in chain A"),
        "hydrogens_only.pdb": (hydrogen + "\nEND\n", "no-protein: the file has no amino-acid residues"),
        "ca_only.pdb": ("\n".join(l for l in lines if l[12:16] == " CA ") + "\nEND\n", "filtered: no-backbone"),
        "malformed.cif": ("data_x\nloop_\n_atom_site.group_PDB\n_atom_site.Cartn_x\nATOM\n", "parse-error: cannot parse as CIF"),
        "garbage_coords.pdb": ("\n".join([set_x(lines[0], "abc.def")] + lines[1:]) + "\n", "parse-error: cannot parse as PDB"),
        "huge_coords.pdb": ("\n".join([set_x(lines[0], "9.99e+30")] + lines[1:]) + "\n", "implausible-coordinates: |x| reaches 9.99e+30"),
        "not_a_structure.ent": ("hello\nthis is prose, not a structure\n", "not-a-structure: the file is not a readable structure"),
    }
    for name, (content, _) in files.items():
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    (folder / "foo.pdb").mkdir()  # a folder named like a structure file
    expected = {name: phrase for name, (_, phrase) in files.items()}
    expected["foo.pdb"] = "not-a-file"
    return expected


def test_broken_inputs_are_logged_and_good_files_processed(tmp_path, good_dir):
    expected = make_broken_inputs(good_dir)
    missing = tmp_path / "does_not_exist.pdb"
    out = tmp_path / "out"
    assert run(good_dir, missing, "--out", out, "--workers", "2") == 0

    rows = metadata(out)
    assert sorted(r["example_id"] for r in rows) == ["1JEK_A_A", "4PNO_A_A", "4YU8_A_A"]
    reasons = {Path(f["source_path"]).name: f["reason"] for f in failures(out)}
    expected[missing.name] = "not-found"
    for name, phrase in expected.items():
        assert name in reasons, f"{name} not logged in failures.tsv"
        assert reasons[name].startswith(phrase), f"{name}: {reasons[name]!r} does not start with {phrase!r}"
    assert len(reasons) == len(expected)
    for row in rows:  # every npz loads as a ChainExample with exactly the DESIGN fields
        with np.load(out / row["example_path"]) as data:
            assert set(data.files) == set(FEATURE_KEYS)
            assert ChainExample.from_npz(dict(data), row["example_id"]).length == int(row["length"])
        assert row["split"] == "train" and len(row["content_hash"]) == 64
    assert (out / "splits" / "train.txt").read_text().split() == sorted(r["example_id"] for r in rows)
    assert not list(out.rglob("*.tmp"))


def test_unknown_chain_is_logged_per_chain(tmp_path, good_dir):
    two = tmp_path / "two"
    two.mkdir()
    chain = read_structure(good_dir / GOOD[0])[0]
    from multiflow.data.io import write_pdb

    write_pdb([chain, read_structure(good_dir / GOOD[2])[0].with_chain_id("B")], two / "pair.pdb")
    out = tmp_path / "out"
    assert run(two, good_dir / GOOD[1], "--chains", "B,Z", "--out", out, "--workers", "1") == 0
    assert [r["example_id"] for r in metadata(out)] == ["pair_B"]
    logged = {(Path(f["source_path"]).name, f["chain_id"]): f["reason"] for f in failures(out)}
    assert logged[("pair.pdb", "Z")].startswith("unknown-chain: chain 'Z' not found")
    assert "protein chains present: A, B" in logged[("pair.pdb", "Z")]
    assert {("4PNO_A.pdb.gz", "B"), ("4PNO_A.pdb.gz", "Z")} <= set(logged)


def test_filters_log_their_reason(tmp_path, good_dir):
    chain = read_structure(good_dir / GOOD[0])[0]
    chain.select(np.r_[0:15, 20:40]).to_pdb(good_dir / "gapped.pdb")  # 5 numbers absent: missing 5/40
    out = tmp_path / "out"
    code = run(good_dir, "--out", out, "--min-length", "36", "--max-length", "41", "--max-missing-fraction", "0.1",
               "--workers", "1")
    assert code == 0
    assert [r["example_id"] for r in metadata(out)] == ["1JEK_A_A", "4YU8_A_A"]
    reasons = {Path(f["source_path"]).name: f["reason"] for f in failures(out)}
    assert reasons["4PNO_A.pdb.gz"] == "filtered: length 42 > --max-length 41"
    assert reasons["gapped.pdb"] == "filtered: length 35 < --min-length 36"

    out2 = tmp_path / "out2"
    assert run(good_dir, "--out", out2, "--max-missing-fraction", "0.1", "--max-coil-fraction", "0.6") == 0
    kept = metadata(out2)
    assert all(float(r["coil_frac"]) <= 0.6 and float(r["missing_frac"]) <= 0.1 for r in kept)
    reasons = {Path(f["source_path"]).name: f["reason"] for f in failures(out2)}
    assert reasons["gapped.pdb"] == "filtered: missing fraction 0.125 > --max-missing-fraction 0.1"
    assert len(kept) + len(reasons) == 4 and len(kept) >= 1


def test_file_list_and_unique_ids(tmp_path, good_dir):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(good_dir / GOOD[0], other / GOOD[0])  # same stem, another folder
    read_structure(good_dir / GOOD[0])[0].to_mmcif(other / "1JEK_A.cif")  # same stem, another format
    listing = tmp_path / "list.txt"
    listing.write_text(f"# sources\n{good_dir / GOOD[0]}\nother\n\n")  # relative to the list's folder
    out = tmp_path / "out"
    assert run("--file-list", listing, "--out", out) == 0
    ids = sorted(r["example_id"] for r in metadata(out))
    assert len(ids) == 3 and len(set(ids)) == 3 and "1JEK_A_A" in ids
    assert all(i.startswith("1JEK_A") and i.endswith("_A") for i in ids)
    assert {r["pdb_id"] for r in metadata(out)} == {"1JEK"}


def test_naming_helpers():
    assert pdb_code("1A12_C") == "1A12" and pdb_code("pdb1abc") == "1ABC" and pdb_code("1h4aX") == "1H4A"
    assert pdb_code("unordered_res") == "unordered_res"
    stems = assign_stems(["/a/x y.pdb", "/b/x y.pdb", "/c/X Y.cif"], {})
    assert stems["/a/x y.pdb"] == "x_y" and len({s.lower() for s in stems.values()}) == 3
    assert assign_stems(["/b/x y.pdb"], {"/a/x y.pdb": "x_y"})["/b/x y.pdb"].startswith("x_y-")


def test_discover_suffixes(tmp_path):
    for name in ("a.pdb", "b.ENT.gz", "c.cif", "d.mmcif.gz", "e.pdbx", "f.txt", "g.pdb.bz2"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "h.cif.gz").write_text("x")
    names = [Path(p).name for p in discover([tmp_path]).files]
    assert names == ["a.pdb", "b.ENT.gz", "c.cif", "d.mmcif.gz", "e.pdbx", "h.cif.gz"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert discover([empty]).problems[0][1].startswith("no-structures")


def test_usage_errors_exit_2(tmp_path, good_dir, capsys):
    assert run("--out", tmp_path / "o") == 2
    assert run(good_dir, "--out", tmp_path / "o", "--max-coil-fraction", "1.5") == 2
    assert run(good_dir, "--out", tmp_path / "o", "--val-fraction", "0.1") == 2
    assert "need --cluster-file" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_same_output_for_any_worker_count(tmp_path, good_dir, workers):
    out = tmp_path / f"out{workers}"
    assert run(good_dir, "--out", out, "--workers", str(workers)) == 0
    rows = metadata(out)
    assert len(rows) == 3
    with np.load(out / rows[0]["example_path"]) as data:
        assert data["rots"].shape == (40, 3, 3)
