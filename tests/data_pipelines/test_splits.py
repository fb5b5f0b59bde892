"""Splits: by manifest (file-stem matching), by cluster file (no cluster crosses splits), default train."""

from __future__ import annotations

import shutil
from collections import defaultdict

import pytest

from data_pipelines.splits import SplitSpec, Splitter
from multiflow.errors import ConfigError
from tests.data_pipelines.pipeline_helpers import FIXTURES, GOOD, metadata, run


def test_split_by_manifest(tmp_path, good_dir):
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("chain_id\tsplit\tlength\n1JEK_A\ttrain\t40\n4PNO_A\tval\t42\n4yu8_a\ttrain_extra\t40\n")
    (good_dir / "9XYZ_B.pdb.gz").write_bytes((FIXTURES / GOOD[0]).read_bytes())  # not in the manifest
    out = tmp_path / "out"
    assert run(good_dir, "--out", out, "--split-manifest", manifest) == 0
    splits = {r["example_id"]: r["split"] for r in metadata(out)}
    assert splits == {"1JEK_A_A": "train", "4PNO_A_A": "val", "4YU8_A_A": "train_extra", "9XYZ_B_A": ""}
    assert (out / "splits" / "val.txt").read_text() == "4PNO_A_A\n"
    assert (out / "splits" / "train_extra.txt").read_text() == "4YU8_A_A\n"
    assert sorted(p.name for p in (out / "splits").iterdir()) == ["train.txt", "train_extra.txt", "val.txt"]

    # a rerun without split options keeps the stored manifest; new split options replace it
    assert run(good_dir, "--out", out) == 0
    assert {r["example_id"]: r["split"] for r in metadata(out)} == splits
    assert run(good_dir, "--out", out, "--cluster-file", write_clusters(tmp_path, [["1jek_a", "4pno_a"]])) == 0
    assert {r["split"] for r in metadata(out)} == {"train"}
    assert sorted(p.name for p in (out / "splits").iterdir()) == ["train.txt"]


def write_clusters(tmp_path, clusters: list[list[str]]):
    path = tmp_path / "clusters.tsv"
    path.write_text("".join(f"{c[0]}\t{m}\n" for c in clusters for m in c))
    return path


def test_split_by_cluster_keeps_clusters_whole(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    clusters = [[f"c{k:02d}m{j}" for j in range(3)] for k in range(12)]
    for k, members in enumerate(clusters):
        for j, name in enumerate(members):
            shutil.copy(FIXTURES / GOOD[(k + j) % 3], src / f"{name}.pdb")
    # a member linked to two representatives joins both clusters into one
    path = tmp_path / "clusters.tsv"
    path.write_text("".join(f"{c[0]}\t{m}\n" for c in clusters for m in c) + "c00m0\tc01m2\n")
    out = tmp_path / "out"
    assert run(src, "--out", out, "--cluster-file", path, "--val-fraction", "0.3", "--test-fraction", "0.3",
               "--seed", "3") == 0
    rows = metadata(out)
    assert len(rows) == 36
    by_cluster = defaultdict(set)
    for row in rows:
        k = int(row["example_id"][1:3])
        by_cluster[0 if k == 1 else k].add(row["split"])
    assert all(len(s) == 1 for s in by_cluster.values()), by_cluster
    assert len({row["split"] for row in rows}) >= 2
    split_files = {p.stem: set(p.read_text().split()) for p in (out / "splits").glob("*.txt")}
    assert set().union(*split_files.values()) == {r["example_id"] for r in rows}
    assert sum(map(len, split_files.values())) == len(rows)


def test_cluster_split_is_stable_and_seeded(tmp_path):
    row = {"example_id": "x_A", "source_path": "/d/x.pdb", "chain_id": "A", "pdb_id": "x"}
    assert Splitter(SplitSpec())(row) == "train"
    clusters = write_clusters(tmp_path, [["a", "b"]])
    one = Splitter(SplitSpec(cluster_file=str(clusters), val_fraction=0.2, test_fraction=0.1, seed=1))
    names = [f"cluster{i}" for i in range(4000)]
    picks = [one.cluster_split(n) for n in names]
    assert picks == [one.cluster_split(n) for n in names]  # a pure function of (seed, cluster name)
    assert picks.count("val") / 4000 == pytest.approx(0.2, abs=0.03)
    assert picks.count("test") / 4000 == pytest.approx(0.1, abs=0.03)
    other = Splitter(SplitSpec(cluster_file=str(clusters), val_fraction=0.2, test_fraction=0.1, seed=2))
    assert picks != [other.cluster_split(n) for n in names]
    assert one.cluster_of(row) == "x_a"  # not in the file: its own cluster


def test_bad_split_inputs(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        SplitSpec(manifest="m", cluster_file="c")
    bad = tmp_path / "m.tsv"
    bad.write_text("id\tsplit\nA\ttrain\n")
    with pytest.raises(ConfigError, match="'chain_id' and 'split'"):
        Splitter(SplitSpec(manifest=str(bad)))
    bad.write_text("chain_id\tsplit\nA\ttrain\na\tval\n")
    with pytest.raises(ConfigError, match="two splits"):
        Splitter(SplitSpec(manifest=str(bad)))
    bad.write_text("chain_id\tsplit\nA\t../x\n")
    with pytest.raises(ConfigError, match="filesystem safe"):
        Splitter(SplitSpec(manifest=str(bad)))
