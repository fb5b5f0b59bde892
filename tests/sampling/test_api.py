"""The Python API: loading weights, typed records, settings, and the run folder written by save()."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import yaml

import multiflow.api as api
from multiflow import __version__
from multiflow.data.io import read_fasta, read_structure
from multiflow.errors import ConfigError, MissingWeightsError, SamplingFailed, SamplingInterrupted
from multiflow.sampling.outputs import Design, DesignSet, check_out_folder
from tests.helpers import at_sampling_batch, raising


def test_missing_default_weights_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "DEFAULT_CHECKPOINT", tmp_path / "assets" / "models" / "cpu_small.pt")
    with pytest.raises(MissingWeightsError, match="cpu_small.pt is not there yet.*--checkpoint"):
        api.load_model()
    with pytest.raises(MissingWeightsError, match="not found"):
        api.load_model(tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="--device must be"):
        api.load_model(tmp_path / "nope.pt", device="tpu")


def test_settings_file_matches_the_dataclass():
    path = api._config_dir() / "sampling" / "default.yaml"
    values = yaml.safe_load(path.read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(api.SamplingSettings)}
    assert values == defaults
    assert all("#" in line for line in path.read_text().splitlines() if ":" in line and not line.startswith("#"))


def test_settings_overrides():
    s = api.SamplingSettings.from_config(["num_steps=7", "sampling.eta=0.5", "sampling_temp=0.3", "purity=true"])
    assert (s.num_steps, s.eta, s.temperature, s.purity) == (7, 0.5, 0.3, True)
    assert api.SamplingSettings.from_config(["num_timesteps=9"]).num_steps == 9
    assert s.replace(temperature=1.0, num_steps=None).temperature == 1.0
    for bad, match in [(["steps=3"], "unknown sampling setting"), (["num_steps"], "expected key=value"),
                       (["num_steps=abc"], "cannot use 'abc'"), (["num_steps=0"], "must be >= 1"),
                       (["eta=-1"], "must be >= 0"), (["purity=maybe"], "cannot use"),
                       (["clash_guidance=1.5"], "must be in \\[0, 1\\]")]:
        with pytest.raises(ConfigError, match=match):
            api.SamplingSettings.from_config(bad)
    assert api.SamplingSettings(self_condition=None).solver_config(True).self_condition is True
    assert api.SamplingSettings(self_condition=False).solver_config(True).self_condition is False
    assert api.SamplingSettings.from_config(["clash_guidance=0.5"]).solver_config(True).clash_guidance == 0.5


def test_generate_returns_typed_records(design_model, tmp_path):
    res = design_model.generate([10, 12], num_samples=2, seed=3)
    assert isinstance(res, DesignSet) and len(res) == 4 and isinstance(res[0], Design)
    assert res.settings["seed"] == 3 and res.settings["num_steps"] == 5
    d = res[1]
    pdb, cif = d.to_pdb(tmp_path / "d.pdb"), d.to_mmcif(tmp_path / "d.cif")
    for path in (pdb, cif):
        back = read_structure(path)
        assert "/".join(c.sequence for c in back) == d.sequence
    assert Design.from_pdb(pdb).sequence == d.sequence
    again = design_model.generate([10, 12], num_samples=2, seed=3)
    assert [x.sequence for x in again] == [x.sequence for x in res]
    assert "seed" in design_model.generate(6).settings  # a random seed is drawn and recorded
    with pytest.raises(ConfigError, match="unknown sampling setting"):
        design_model.generate(6, steps=3)


def test_save_writes_a_complete_run_folder(design_model, toy_pdb, tmp_path):
    res = design_model.inverse_fold(toy_pdb, chains_to_design="A", fixed_residues="A7", batch_size=2,
                                    number_of_batches=2, seed=11, temperature=0.2)
    out = design_model.save(res, tmp_path / "run", command=["multiflow", "inverse-fold"])
    assert (out / "DONE").is_file() and not list(tmp_path.glob(".run.partial*"))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["seed"] == 11 and info["package_version"] == __version__
    assert info["checkpoint"]["sha256"] == design_model.loaded.sha256 and info["checkpoint"]["path"].endswith("tiny.pt")
    assert info["settings"]["temperature"] == 0.2 and info["command"] == ["multiflow", "inverse-fold"]
    assert info["report"]["fixed_residues"] == ["A7"] and info["report"]["dropped_residues"] == ["A77"]
    assert info["files"]["viewer"] == "viewer.html" and "toy_1" in (out / "viewer.html").read_text()
    records = read_fasta(out / "seqs" / "toy.fa")
    assert len(records) == 5 and records[0][1] == res.native.sequence
    assert records[0][0].startswith("toy, score=") and "designed_chains=['A']" in records[0][0]
    assert records[1][0].startswith("toy_1, id=1, T=0.2, seed=11, score=") and ", seq_rec=" in records[1][0]
    assert ", model=tiny@" in records[1][0] and records[1][1] == res[0].sequence and "/" in records[1][1]
    rows = list(csv.DictReader((out / "designs.csv").open()))
    assert [r["name"] for r in rows] == ["toy_1", "toy_2", "toy_3", "toy_4"]
    for row, d in zip(rows, res):
        assert row["sequence"] == d.sequence and float(row["seq_rec"]) == pytest.approx(d.metrics["seq_rec"], abs=1e-4)
        assert "/".join(c.sequence for c in read_structure(out / row["structure"])) == d.sequence
    with pytest.raises(ConfigError, match="not empty; choose a new folder or pass --overwrite"):
        design_model.save(res, out)
    design_model.save(res, out, overwrite=True, mmcif=True)
    assert sorted(p.suffix for p in (out / "structures").iterdir()) == [".cif"] * 4


def test_save_trajectory_and_scaffold(design_model, toy_pdb, tmp_path):
    res = design_model.scaffold(str(toy_pdb), "4/A2-6/4", num_designs=2, seed=1, save_trajectory=True,
                                trajectory_stride=2)
    out = design_model.save(res, tmp_path / "sc")
    traj = out / "trajectories" / f"{res[0].name}_traj.pdb"
    text = traj.read_text()
    assert text.count("MODEL") == 4  # steps 0, 2, 4 and the final state
    rows = list(csv.DictReader((out / "designs.csv").open()))
    assert rows[0]["contig"] == res[0].metrics["contig"] and float(rows[0]["motif_ca_rmsd"]) < 1e-3


def test_out_folder_guard(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a multiflow run folder"):
        check_out_folder(tmp_path / "stuff", overwrite=True)
    assert check_out_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"  # parents are created when writing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a writable folder"):
        check_out_folder(tmp_path / "file" / "run")


def test_checkpoint_from_another_model_version_is_a_clear_error(tiny_checkpoint, tmp_path):
    import torch

    data = torch.load(tiny_checkpoint, weights_only=False)
    data["config"]["model"]["node_dim"] = 16  # weights no longer fit the model built from the config
    torch.save(data, tmp_path / "stale.pt")
    with pytest.raises(MissingWeightsError, match="does not fit this version of the model"):
        api.load_model(tmp_path / "stale.pt", device="cpu")


def test_sampling_shows_the_model_only_times_it_was_trained_on(design_model, monkeypatch):
    seen: list[float] = []
    model = design_model.loaded.model
    forward = model.forward

    def spy(state, t, **extras):
        seen.extend(float(v[v < 1].max()) for v in t.values() if (v < 1).any())  # 1: given, or scoring
        return forward(state, t, **extras)

    monkeypatch.setattr(model, "forward", spy)
    design_model.generate(8, seed=0, num_steps=400)  # grid spacing 0.0025: the last points lie above 0.99
    assert max(seen) == pytest.approx(1 - design_model.loaded.interpolant.config.min_t)


def test_recycles_reach_the_solver(design_model, toy_pdb, monkeypatch):
    calls: list[bool] = []
    model = design_model.loaded.model
    forward = model.forward

    def spy(state, t, **extras):
        calls.append(extras.get("self_condition") is not None)
        return forward(state, t, **extras)

    monkeypatch.setattr(model, "forward", spy)
    design_model.inverse_fold(toy_pdb, chains_to_design="A", seed=0, num_steps=3)
    assert calls[:3] == [False, True, True]  # default: one pass per step (then the scoring passes)
    scoring = calls[3:]
    calls.clear()
    res = design_model.inverse_fold(toy_pdb, chains_to_design="A", seed=0, num_steps=3, recycles=2)
    assert res.settings["recycles"] == 2
    assert calls == [False] + [True] * 8 + scoring  # 3 steps x (1 + 2) passes, all but the first self-conditioned
    with pytest.raises(ConfigError, match="recycles=1 .* self-conditioning is off"):
        design_model.inverse_fold(toy_pdb, chains_to_design="A", seed=0, recycles=1, self_condition=False)
    with pytest.raises(ConfigError, match="recycles must be >= 0"):
        api.SamplingSettings.from_config(["recycles=-1"])


@pytest.mark.parametrize("exc, stop_type, reason", [(KeyboardInterrupt(), SamplingInterrupted, "interrupted"),
                                                    (RuntimeError("boom"), SamplingFailed, "RuntimeError: boom")])
def test_a_stopped_run_hands_back_the_finished_designs(design_model, toy_pdb, monkeypatch, exc, stop_type, reason):
    # lengths 8, 8, 10, 10 in batches of <= 20 residues: two batches of two designs
    full = design_model.generate([8, 10], num_samples=2, seed=3, max_tokens=20)
    at_sampling_batch(monkeypatch, 2, raising(exc))
    with pytest.raises(stop_type, match="after 2 of 4 designs") as info:
        design_model.generate([8, 10], num_samples=2, seed=3, max_tokens=20)
    stop = info.value
    assert stop.__cause__ is exc and stop.reason == reason and (stop.done, stop.total) == (2, 4)
    # the finished batch is the same as in the uninterrupted run (same seed, same batching), with its settings
    assert [d.name for d in stop.result] == [d.name for d in full][:2]
    assert [d.sequence for d in stop.result] == [d.sequence for d in full][:2]
    assert stop.result.settings["seed"] == 3 and stop.result.settings["max_tokens"] == 20
    # inverse folding keeps its native record and numbering of the finished sequences
    at_sampling_batch(monkeypatch, 2, raising(exc))
    with pytest.raises(stop_type) as info:
        design_model.inverse_fold(toy_pdb, chains_to_design="A", batch_size=2, number_of_batches=3, seed=1)
    result = info.value.result
    assert [d.metrics["id"] for d in result] == [1, 2] and result.native is not None and info.value.total == 6


def test_an_interrupted_run_still_stops_code_that_catches_errors(design_model, monkeypatch):
    # the evaluation loop records a design's errors with `except Exception` and goes on; Ctrl-C must
    # still stop it, as it did before sampling handed back finished designs
    at_sampling_batch(monkeypatch, 2, raising(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        try:
            design_model.generate([8, 10], num_samples=2, seed=3, max_tokens=20)
        except Exception:  # noqa: BLE001
            pytest.fail("an interruption was caught as an error")


def test_a_run_stopped_in_its_first_batch_raises_the_interruption_itself(design_model, monkeypatch):
    at_sampling_batch(monkeypatch, 1, raising(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        design_model.generate([8, 10], num_samples=2, seed=3, max_tokens=20)


def test_per_residue_bias_and_omit_reach_their_residues_only(design_model, toy_pdb):
    from multiflow.constants import RESTYPES

    all_but_w = "".join(a for a in RESTYPES if a != "W")
    res = design_model.inverse_fold(toy_pdb, chains_to_design="A", num_sequences=3, seed=2, bias_AA="G:-5",
                                    omit_AA_per_residue={"A7": all_but_w}, bias_AA_per_residue={"A8": {"P": 60}})
    for d in res:
        chain_a = next(c for c in d.chains if c.chain_id == "A")
        letters = dict(zip(chain_a.residue_labels(), chain_a.sequence))
        assert letters["A7"] == "W" and letters["A8"] == "P"
        assert sum(v == "W" for v in letters.values()) < len(letters) / 2  # not everywhere
    assert res.report["omit_AA_per_residue"] == {"A7": all_but_w} and res.report["bias_AA"] == {"G": -5.0}
    with pytest.raises(ConfigError, match="B3 is not designed"):
        design_model.inverse_fold(toy_pdb, chains_to_design="A", bias_AA_per_residue={"B3": {"G": 1}})
    with pytest.raises(ConfigError, match="leave no amino acid at A7"):
        design_model.inverse_fold(toy_pdb, omit_AA="W", omit_AA_per_residue={"A7": all_but_w})
    with pytest.raises(ConfigError, match="not found in the structure"):
        design_model.inverse_fold(toy_pdb, omit_AA_per_residue={"A999": "C"})
    with pytest.raises(ConfigError, match="--bias_AA_per_residue A8: --bias_AA"):
        design_model.inverse_fold(toy_pdb, bias_AA_per_residue={"A8": {"J": 1}})
