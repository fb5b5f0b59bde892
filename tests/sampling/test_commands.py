"""The design subcommands: --help, end-to-end runs, and bad input -> exit code 2 with a named problem."""

from __future__ import annotations

import csv
import json

import pytest

from multiflow import cli
from multiflow.data.io import read_fasta, read_structure
from multiflow.sampling.commands import NAMES, run_subcommand
from tests.helpers import at_sampling_batch, raising


@pytest.mark.parametrize("name", NAMES)
def test_help(name, capsys):
    assert cli.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"multiflow {name}" in out and "--checkpoint" in out and "--out_folder" in out and "key=value" in out
    if name == "inverse-fold":
        for flag in ("--pdb_path", "--chains_to_design", "--fixed_residues", "--redesigned_residues", "--bias_AA",
                     "--omit_AA", "--sampling_temp", "--number_of_batches", "--num_seq_per_target"):
            assert flag in out


def test_usage_error_exits_2(capsys):
    assert run_subcommand("scaffold", ["--contigs", "5/A1-3/5"]) == 2  # --pdb_path missing
    assert "required" in capsys.readouterr().err


def _run(name, argv, tmp_path, ckpt, capsys):
    out = tmp_path / "run"
    code = run_subcommand(name, [*argv, "--checkpoint", str(ckpt), "--out_folder", str(out), "--seed", "3",
                                 "num_steps=4"])
    captured = capsys.readouterr()
    return code, out, captured


def test_sample_end_to_end(tmp_path, tiny_checkpoint, capsys):
    code, out, cap = _run("sample", ["--lengths", "8-10:2", "--num_samples", "2", "--save_trajectory"], tmp_path,
                          tiny_checkpoint, capsys)
    assert code == 0, cap.err
    rows = list(csv.DictReader((out / "designs.csv").open()))
    assert [r["length"] for r in rows] == ["8", "8", "10", "10"]
    assert len(read_fasta(out / "seqs" / "codesign.fa")) == 4
    assert read_structure(out / rows[0]["structure"])[0].sequence == rows[0]["sequence"]
    assert (out / rows[0]["trajectory"]).is_file()
    info = json.loads((out / "run.json").read_text())
    assert info["settings"]["num_steps"] == 4 and info["command"][:2] == ["multiflow", "sample"]
    assert "codesign" in cap.out  # summary table


def test_inverse_fold_end_to_end(tmp_path, tiny_checkpoint, toy_pdb, capsys):
    argv = ["--pdb_path", str(toy_pdb), "--chains_to_design", "A", "--fixed_residues", "A7 A10A",
            "--num_seq_per_target", "3", "--batch_size", "2", "--sampling_temp", "0.2", "--omit_AA", "CX"]
    code, out, cap = _run("inverse-fold", argv, tmp_path, tiny_checkpoint, capsys)
    assert code == 0, cap.err
    assert "designed chains: A" in cap.out and "context chains (fixed): B" in cap.out
    assert "fixed residues in designed chains (2): A7 A10A" in cap.out
    assert "A77" in cap.out  # the residue without backbone is reported as dropped
    records = read_fasta(out / "seqs" / "toy.fa")
    assert len(records) == 4 and "T=0.2" in records[1][0] and "seq_rec=" in records[1][0]
    assert all("C" not in seq.split("/")[0] for _, seq in records[1:])  # --omit_AA C


def test_fold_and_scaffold_end_to_end(tmp_path, tiny_checkpoint, toy_pdb, capsys):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">one\nMKTAYIAKQR\n>two\nGSPEEL/LKKAEE\n")
    code, out, cap = _run("fold", ["--fasta_path", str(fasta)], tmp_path, tiny_checkpoint, capsys)
    assert code == 0, cap.err
    assert [s for _, s in read_fasta(out / "seqs" / "fold.fa")] == ["MKTAYIAKQR", "GSPEEL/LKKAEE"]
    (tmp_path / "sc").mkdir()
    code, out, cap = _run("scaffold", ["--pdb_path", str(toy_pdb), "--contigs", "3-5/A2-6/3", "--num_designs", "2",
                                       "--keep_motif_sequence"], tmp_path / "sc", tiny_checkpoint, capsys)
    assert code == 0, cap.err
    assert "motif A2-6: 5 residues (A2..A6)" in cap.out
    rows = list(csv.DictReader((out / "designs.csv").open()))
    assert len(rows) == 2 and all(r["sequence"][int(r["contig"].split("/")[0]):][:5] == "KTAYI" for r in rows)


@pytest.mark.parametrize("name,argv,match", [
    ("inverse-fold", ["--chains_to_design", "C"], "chain(s) C not in the structure"),
    ("inverse-fold", ["--fixed_residues", "A7 A7B"], "A7B not found"),
    ("inverse-fold", ["--fixed_residues", "A7", "--redesigned_residues", "A7"], "overlap at A7"),
    ("inverse-fold", ["--num_seq_per_target", "4", "--number_of_batches", "2"], "not both"),
    ("inverse-fold", ["--bias_AA", "A:x"], "LETTER:VALUE"),
    ("scaffold", ["--contigs", "5/A30-40/5"], "A30, A40 not in the structure"),
    ("scaffold", ["--contigs", "5/A11-71/5"], "absent from the structure"),
    ("sample", ["--lengths", "0"], "length must be >= 1"),
    ("sample", ["--lengths", "2500"], "exceeds 2000 residues; pass --allow_long"),
    ("sample", [], "give --lengths"),
    ("sample", ["--lengths", "10", "--num_steps", "3", "num_steps=4"], "given both as a flag and as key=value"),
    ("sample", ["--lengths", "10", "bogus=1"], "unknown sampling setting"),
    ("sample", ["--lengths", "10", "--device", "cuda"], "CUDA is not available"),
    ("fold", ["--sequence", "MKVJ"], "'J' at 4"),
    ("fold", [], "give --fasta_path or --sequence"),
])
def test_bad_input_exits_2_with_a_specific_message(name, argv, match, tmp_path, tiny_checkpoint, toy_pdb, capsys):
    if name in ("inverse-fold", "scaffold"):
        argv = ["--pdb_path", str(toy_pdb), *argv]
    if name == "scaffold" and "--contigs" not in argv:
        argv = [*argv, "--contigs", "5/A2-4/5"]
    out = tmp_path / "out"
    code = run_subcommand(name, [*argv, "--checkpoint", str(tiny_checkpoint), "--out_folder", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and match in err, err
    assert not out.exists() and not list(tmp_path.glob(".out.partial*"))


def test_unreadable_and_missing_files(tmp_path, tiny_checkpoint, capsys):
    garbage = tmp_path / "garbage.pdb"
    garbage.write_bytes(b"\x00\x01 not a structure")
    for path, match in [(garbage, "garbage.pdb"), (tmp_path / "missing.pdb", "missing.pdb")]:
        code = run_subcommand("inverse-fold", ["--pdb_path", str(path), "--checkpoint", str(tiny_checkpoint),
                                               "--out_folder", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and match in err
    code = run_subcommand("sample", ["--lengths", "5", "--checkpoint", str(tmp_path / "none.pt"),
                                     "--out_folder", str(tmp_path / "o")])
    assert code == 2 and "none.pt not found" in capsys.readouterr().err


def test_existing_out_folder_is_not_clobbered(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = run_subcommand("sample", ["--lengths", "5", "--checkpoint", str(tiny_checkpoint), "--out_folder", str(out)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def _sigterm_self():
    """A real SIGTERM to this process: the command's handler turns it into a stop at the next bytecode."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("action, code", [(raising(KeyboardInterrupt()), 130), (_sigterm_self, 143)])
def test_interrupted_run_writes_the_finished_batches(action, code, tmp_path, tiny_checkpoint, monkeypatch, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    at_sampling_batch(monkeypatch, 2, action)
    out = tmp_path / "run"
    got = run_subcommand("sample", ["--lengths", "8-10:2", "--num_samples", "2", "--checkpoint", str(tiny_checkpoint),
                                    "--out_folder", str(out), "--seed", "3", "num_steps=4", "max_tokens=20"])
    err = capsys.readouterr().err
    assert got == code, err
    assert "after 2 of 4 designs" in err and str(out) in err
    info = json.loads((out / "run.json").read_text())
    assert info["status"].startswith("interrupted: sampling stopped after 2 of 4 designs") and info["num_designs"] == 2
    assert [r["length"] for r in csv.DictReader((out / "designs.csv").open())] == ["8", "8"]
    assert len(read_fasta(out / "seqs" / "codesign.fa")) == 2 and (out / "DONE").is_file()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is only there while sampling


def test_a_run_that_fails_part_way_keeps_its_finished_designs_then_raises(tmp_path, tiny_checkpoint, monkeypatch,
                                                                         capsys):
    at_sampling_batch(monkeypatch, 2, raising(RuntimeError("out of memory in batch 2")))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="out of memory in batch 2"):
        run_subcommand("sample", ["--lengths", "8-10:2", "--num_samples", "2", "--checkpoint", str(tiny_checkpoint),
                                  "--out_folder", str(out), "--seed", "3", "num_steps=4", "max_tokens=20"])
    info = json.loads((out / "run.json").read_text())
    assert "RuntimeError: out of memory in batch 2" in info["status"] and info["num_designs"] == 2


def _targets(tmp_path, toy_pdb):
    """Two good targets, a corrupt file and a missing one, listed LigandMPNN-style in a JSON object."""
    import shutil

    for name in ("a.pdb", "b.pdb"):
        shutil.copy(toy_pdb, tmp_path / name)
    (tmp_path / "corrupt.pdb").write_text("ATOM  garbage\n")
    paths = [str(tmp_path / n) for n in ("a.pdb", "corrupt.pdb", "missing.pdb", "b.pdb")]
    (tmp_path / "targets.json").write_text(json.dumps({p: "" for p in paths}))
    return paths


def test_inverse_fold_many_targets_keeps_going_past_bad_ones(tmp_path, tiny_checkpoint, toy_pdb, capsys):
    paths = _targets(tmp_path, toy_pdb)
    (tmp_path / "fixed.json").write_text(json.dumps({"a": "A7 A10A"}))  # by target name; b uses --fixed_residues
    out = tmp_path / "run"
    code = run_subcommand("inverse-fold", [
        "--pdb_path_multi", str(tmp_path / "targets.json"), "--fixed_residues_multi", str(tmp_path / "fixed.json"),
        "--fixed_residues", "A7", "--chains_to_design", "A", "--num_seq_per_target", "2",
        "--checkpoint", str(tiny_checkpoint), "--out_folder", str(out), "--seed", "3", "num_steps=3"])
    cap = capsys.readouterr()
    assert code == 1, cap.err  # two targets failed; the others were designed
    rows = list(csv.DictReader((out / "targets.csv").open()))
    assert [(r["target"], r["status"], r["designs"]) for r in rows] == [
        ("a", "complete", "2"), ("corrupt", "failed", "0"), ("missing", "failed", "0"), ("b", "complete", "2")]
    assert rows[0]["file"] == paths[0] and rows[0]["mean_seq_rec"] != ""
    assert "BadStructureError" in rows[1]["error"] and "missing.pdb" in rows[2]["error"]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete with 2 failed target(s)" and info["num_targets"] == 4
    assert (out / "DONE").is_file()
    for name, fixed in (("a", ["A7", "A10A"]), ("b", ["A7"])):  # each target folder is a complete run
        sub = json.loads((out / name / "run.json").read_text())
        assert sub["status"] == "complete" and sub["report"]["fixed_residues"] == fixed
        assert len(read_fasta(out / name / "seqs" / f"{name}.fa")) == 3  # native + 2
    assert "going on with the next target" in cap.err
    headers = [h for h, _ in read_fasta(out / "all_seqs.fa")]  # natives and designs of both targets
    assert len(headers) == 6 and headers[0].startswith("a,") and headers[3].startswith("b,")
    # --overwrite replaces the whole multi-target run, and only once the new one is done
    (tmp_path / "targets.json").write_text(json.dumps([paths[3]]))
    code = run_subcommand("inverse-fold", ["--pdb_path_multi", str(tmp_path / "targets.json"), "--overwrite",
                                           "--checkpoint", str(tiny_checkpoint), "--out_folder", str(out), "num_steps=2"])
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run")) == []
    assert [r["target"] for r in csv.DictReader((out / "targets.csv").open())] == ["b"] and not (out / "a").exists()


def test_inverse_fold_many_targets_stopped_keeps_the_finished_ones(tmp_path, tiny_checkpoint, toy_pdb, monkeypatch,
                                                                  capsys):
    _targets(tmp_path, toy_pdb)
    at_sampling_batch(monkeypatch, 4, raising(KeyboardInterrupt()))  # a: batches 1, 2; b: 3, then stopped in 4
    out = tmp_path / "run"
    code = run_subcommand("inverse-fold", [
        "--pdb_path_multi", str(tmp_path / "targets.json"), "--batch_size", "1", "--number_of_batches", "2",
        "--checkpoint", str(tiny_checkpoint), "--out_folder", str(out), "--seed", "3", "num_steps=3"])
    assert code == 130, capsys.readouterr().err
    rows = list(csv.DictReader((out / "targets.csv").open()))
    assert [(r["target"], r["status"], r["designs"]) for r in rows][::3] == [("a", "complete", "2"),
                                                                           ("b", "interrupted", "1")]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted" and not (out / "DONE").exists()
    assert json.loads((out / "b" / "run.json").read_text())["status"].startswith("interrupted: sampling stopped")


@pytest.mark.parametrize("argv, match", [
    (["--pdb_path", "x.pdb", "--pdb_path_multi", "t.txt"], "not both"),
    ([], "give --pdb_path"),
    (["--pdb_path", "x.pdb", "--fixed_residues_multi", "f.json"], "go with --pdb_path_multi"),
    (["--pdb_path_multi", "{tmp}/empty.txt"], "lists no structures"),
    (["--pdb_path_multi", "{tmp}/list.txt", "--fixed_residues_multi", "{tmp}/f.json"], "'zzz' is not one of"),
])
def test_inverse_fold_many_targets_bad_flags(argv, match, tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "list.txt").write_text("# one per line\nsome/a.pdb\n")
    (tmp_path / "f.json").write_text(json.dumps({"zzz": "A1"}))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = run_subcommand("inverse-fold", [*argv, "--checkpoint", str(tiny_checkpoint),
                                           "--out_folder", str(tmp_path / "run")])
    assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_inverse_fold_per_residue_flags(tmp_path, tiny_checkpoint, toy_pdb, capsys):
    (tmp_path / "omit.json").write_text(json.dumps({"A7": "ACDEFGHIKLMNPQRSTVY"}))  # all but W
    (tmp_path / "bad.json").write_text("{not json")
    code, out, cap = _run("inverse-fold", ["--pdb_path", str(toy_pdb), "--chains_to_design", "A", "--num_seq_per_target",
                                           "2", "--omit_AA_per_residue", str(tmp_path / "omit.json")],
                          tmp_path, tiny_checkpoint, capsys)
    assert code == 0, cap.err
    for row in csv.DictReader((out / "designs.csv").open()):
        chain_a = read_structure(out / row["structure"])[0]
        assert dict(zip(chain_a.residue_labels(), chain_a.sequence))["A7"] == "W"
    assert json.loads((out / "run.json").read_text())["report"]["omit_AA_per_residue"] == {"A7": "ACDEFGHIKLMNPQRSTVY"}
    code = run_subcommand("inverse-fold", ["--pdb_path", str(toy_pdb), "--bias_AA_per_residue", str(tmp_path / "bad.json"),
                                           "--checkpoint", str(tiny_checkpoint), "--out_folder", str(tmp_path / "r2")])
    assert code == 2 and "--bias_AA_per_residue" in capsys.readouterr().err and not (tmp_path / "r2").exists()
