"""Resumability: reruns skip finished sources, redo exactly what is missing, survive a killed run."""

from __future__ import annotations

import os
import signal
import shutil
import subprocess
import sys
import time

import pytest

from tests.data_pipelines.pipeline_helpers import FIXTURES, GOOD, failures, journal_sources, metadata, run


def test_rerun_processes_nothing_new(tmp_path, good_dir):
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    first = metadata(out)
    stamps = {r["example_id"]: (out / r["example_path"]).stat().st_mtime_ns for r in first}
    assert run(good_dir, "--out", out) == 0
    assert len(journal_sources(out)) == 1  # the second run recorded no source
    assert metadata(out) == first
    assert stamps == {r["example_id"]: (out / r["example_path"]).stat().st_mtime_ns for r in first}


def test_deleted_npz_is_redone_alone(tmp_path, good_dir):
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    victim = next(r for r in metadata(out) if r["example_id"] == "4PNO_A_A")
    (out / victim["example_path"]).unlink()
    assert run(good_dir, "--out", out) == 0
    assert journal_sources(out)[1] == [str(good_dir / "4PNO_A.pdb.gz")]
    assert (out / victim["example_path"]).is_file() and len(metadata(out)) == 3


def test_changed_and_touched_sources(tmp_path, good_dir):
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    target = good_dir / "1JEK_A.pdb.gz"
    os.utime(target, ns=(1, 1))  # touched, same content: the hash says it is done
    assert run(good_dir, "--out", out) == 0
    assert journal_sources(out)[1] == [str(target)]  # only a refreshed record, no reprocessing
    assert run(good_dir, "--out", out) == 0
    assert len(journal_sources(out)) == 2
    shutil.copy(FIXTURES / "4YU8_A.pdb.gz", target)  # new content under the same name
    assert run(good_dir, "--out", out) == 0
    row = next(r for r in metadata(out) if r["example_id"] == "1JEK_A_A")
    assert row["content_hash"] == next(r["content_hash"] for r in metadata(out) if r["example_id"] == "4YU8_A_A")


def test_failed_sources_skipped_unless_retry(tmp_path, good_dir):
    bad = good_dir / "bad.pdb"
    bad.write_text("not a structure at all\n")
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    assert run(good_dir, "--out", out) == 0
    assert len(journal_sources(out)) == 1
    assert run(good_dir, "--out", out, "--retry-failed") == 0
    assert journal_sources(out)[1] == [str(bad)]
    assert [f["source_path"] for f in failures(out)] == [str(bad)]


def test_changed_processing_options_need_overwrite(tmp_path, good_dir, capsys):
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    assert run(good_dir, "--out", out, "--min-length", "41") == 2
    assert "--overwrite" in capsys.readouterr().err
    (out / "unrelated.txt").write_text("keep me")
    assert run(good_dir, "--out", out, "--min-length", "41", "--overwrite") == 0
    assert [r["example_id"] for r in metadata(out)] == ["4PNO_A_A"]
    assert len(list((out / "examples").rglob("*.npz"))) == 1 and (out / "unrelated.txt").exists()


def test_interrupted_run_state_is_rebuilt(tmp_path, good_dir):
    """What kill -9 can leave: a half journal line, a stale temp npz, metadata missing or old."""
    out = tmp_path / "out"
    assert run(good_dir, "--out", out) == 0
    expected = metadata(out)
    journal = sorted((out / "journal").glob("*.jsonl"))[0]
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # last record cut mid-line
    (out / "metadata.csv").unlink()
    (out / "splits" / "train.txt").write_text("stale\n")
    stale_tmp = out / "examples" / "00" / ".x.npz.abc.tmp"
    stale_tmp.parent.mkdir(parents=True, exist_ok=True)
    stale_tmp.write_bytes(b"partial")
    assert run(good_dir, "--out", out) == 0
    assert len(journal_sources(out)[1]) == 1  # only the source whose record was cut is redone
    assert metadata(out) == expected
    assert sorted((out / "splits" / "train.txt").read_text().split()) == sorted(r["example_id"] for r in expected)
    assert not stale_tmp.exists()


@pytest.mark.slow
def test_kill_9_mid_run_loses_nothing_finished(tmp_path):
    """A real SIGKILL while workers write; the rerun completes the set and redoes little."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(150):
        shutil.copy(FIXTURES / GOOD[i % 3], src / f"c{i:03d}.pdb.gz")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_pipelines.preprocess", str(src), "--out", str(out), "--workers", "2",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum(map(len, journal_sources(out))) < 20:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sum(len(j) for j in journal_sources(out))
    assert 20 <= done_before < 150, "the run finished before it could be killed"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert len(metadata(out)) == 150
    assert sum(len(j) for j in journal_sources(out)) == 150  # nothing journalled was redone
