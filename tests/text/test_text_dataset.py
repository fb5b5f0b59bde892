"""Corpus discovery, split by file (disjoint, deterministic), packing."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.text.datamodule import TextDataModule, evenly_spaced_windows
from multiflow.text.dataset import SPLITS, PackedSequences, load_corpus, split_of, tokenize_stream
from multiflow.text.tokenizer import ByteTokenizer


@pytest.fixture()
def corpus_dir(tmp_path):
    for i in range(60):
        sub = tmp_path / f"pkg{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_skip.py").write_text("skip me\n")
    (tmp_path / "notes.txt").write_text("not python\n")
    return tmp_path


def test_split_is_disjoint_complete_and_deterministic(corpus_dir):
    a = load_corpus(corpus_dir, fractions=(0.6, 0.2, 0.2), exclude_dirs=("tests",))
    b = load_corpus(corpus_dir, fractions=(0.6, 0.2, 0.2), exclude_dirs=("tests",))
    sets = [set(a.files[s]) for s in SPLITS]
    assert sum(len(s) for s in sets) == 60 and len(set.union(*sets)) == 60  # every file in exactly one split
    assert all(len(s) > 0 for s in sets)
    assert a.files == b.files and a.manifest["file_list_sha256"] == b.manifest["file_list_sha256"]
    for split in SPLITS:
        for p in a.files[split]:
            assert split_of(p.relative_to(corpus_dir).as_posix(), (0.6, 0.2, 0.2)) == split


def test_split_does_not_depend_on_other_files(corpus_dir):
    before = load_corpus(corpus_dir, fractions=(0.6, 0.2, 0.2))
    (corpus_dir / "pkg0" / "new.py").write_text("x = 1\n")
    after = load_corpus(corpus_dir, fractions=(0.6, 0.2, 0.2))
    for split in SPLITS:
        assert set(before.files[split]) <= set(after.files[split])
    assert before.manifest["file_list_sha256"] != after.manifest["file_list_sha256"]


def test_glob_source_and_errors(corpus_dir):
    c = load_corpus(str(corpus_dir / "**" / "*.txt"))
    assert sum(len(v) for v in c.files.values()) == 1
    with pytest.raises(ConfigError):
        load_corpus(corpus_dir / "missing")
    with pytest.raises(ConfigError):
        load_corpus(corpus_dir, fractions=(0.5, 0.2, 0.2))


def test_stdlib_manifest():
    c = load_corpus("stdlib")
    m = c.manifest
    assert m["python_version"] == platform.python_version() and len(m["file_list_sha256"]) == 64
    assert m["n_files"]["train"] > m["n_files"]["test"] > 0
    assert not any("site-packages" in p.parts or "test" in p.relative_to(c.root).parts[:-1]
                   for split in SPLITS for p in c.files[split])


def test_packing():
    tok = ByteTokenizer()
    stream = tokenize_stream(["ab", "cde"], tok)
    np.testing.assert_array_equal(stream, [97, 98, 0, 99, 100, 101, 0])  # files joined by EOS (NUL)
    ds = PackedSequences(np.arange(10), seq_len=3)
    assert len(ds) == 3 and ds[2].tolist() == [6, 7, 8] and ds[0].dtype == torch.int64
    ds.set_shift(1)
    assert len(ds) == 3 and ds[0].tolist() == [1, 2, 3]
    with pytest.raises(IndexError):
        ds[3]
    kept = evenly_spaced_windows(np.arange(100), 10, 3)
    np.testing.assert_array_equal(kept.reshape(3, 10)[:, 0], [0, 40, 90])


def test_datamodule_batches(corpus_dir):
    dm = TextDataModule(source=str(corpus_dir), seq_len=16, batch_size=4, fractions=(0.6, 0.2, 0.2))
    tok = dm.prepare()
    assert tok.vocab_size == 256
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 16) and batch.dtype == torch.int64
    text = "".join(dm.corpus.read("val"))
    assert dm.stream("val").size <= len(text.encode()) + len(dm.corpus.files["val"])
