"""End-to-end training on a tiny processed folder: steps run, losses are finite, checkpoints resume."""

import math
import subprocess
import sys

import pytest
import torch

from multiflow.training.builders import build_datamodule, build_module
from multiflow.training.train import compose_config, resume_checkpoint, run
from tests.helpers import write_processed

TINY = ["model=tiny", "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false", "data.num_workers=0", "data.max_tokens=400", "data.crop_length=64",
        "data.max_coil_fraction=1.0", "training.warmup_steps=1"]


@pytest.fixture()
def processed(tmp_path):
    root = tmp_path / "processed"
    write_processed(root, [40, 48, 56, 64, 80, 44, 50], split=["train"] * 5 + ["val"] * 2)
    return root


def _overrides(processed, run_dir, *extra):
    return [*TINY, f"data.root={processed}", f"run_dir={run_dir}", "data.train_splits=[train]", *extra]


def test_loss_terms_are_finite_and_backpropagate(processed, tmp_path):
    cfg = compose_config("train", _overrides(processed, tmp_path / "run"))
    module = build_module(cfg)
    dm = build_datamodule(cfg)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    terms = module.compute_losses(batch)
    assert {"trans_vf", "rots_vf", "aa", "bb_atom", "pair_dist", "loss"} <= set(terms)
    assert all(math.isfinite(float(v.detach())) for v in terms.values())
    terms["loss"].backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)


def test_confidence_head_is_trained_on_the_lddt_of_its_own_prediction(processed, tmp_path):
    from multiflow.errors import ConfigError

    cfg = compose_config("train", _overrides(processed, tmp_path / "run", "model.confidence_head=true"))
    module = build_module(cfg)
    dm = build_datamodule(cfg)
    dm.setup()
    terms = module.compute_losses(next(iter(dm.train_dataloader())))
    assert 0.0 <= float(terms["lddt_ca"]) <= 1.0 and float(terms["confidence"]) > 0
    # the zero-initialised head says 0.5 everywhere: its loss is the BCE of 0.5, i.e. log 2
    assert float(terms["confidence"]) == pytest.approx(math.log(2), abs=1e-4)
    terms["loss"].backward()
    head = module.model.denoiser.confidence_head
    assert head[-1].weight.grad is not None and bool(head[-1].weight.grad.abs().sum() > 0)
    with pytest.raises(ConfigError, match="confidence_head=true needs"):
        build_module(compose_config("train", _overrides(processed, tmp_path / "r2", "model.confidence_head=true",
                                                        "training.loss_weights.confidence=0")))
    # without the head the weight is simply not used
    plain = build_module(compose_config("train", _overrides(processed, tmp_path / "r3")))
    assert "confidence" not in plain.loss_weights


def test_distillation_term_reaches_the_logits_and_needs_targets(processed, tmp_path):
    import numpy as np

    from multiflow.errors import ConfigError

    folder = processed / "seq_targets" / "teacher"
    folder.mkdir(parents=True)
    for i, n in enumerate([40, 48, 56, 64, 80, 44, 50]):  # the chains of the fixture, in order (ex0 .. ex6)
        np.save(folder / f"ex{i}.npy", np.random.default_rng(i).dirichlet(np.ones(20), n).astype(np.float32))
    weights = ["training.loss_weights.aa=0", "training.loss_weights.trans_vf=0", "training.loss_weights.rots_vf=0",
               "training.loss_weights.bb_atom=0", "training.loss_weights.pair_dist=0", "training.loss_weights.clash=0",
               "training.loss_weights.aa_distill=1", "flows.mixture.codesign=0", "flows.mixture.forward_folding=0",
               "flows.mixture.partial=0", "flows.mixture.inverse_folding=1"]
    cfg = compose_config("train", _overrides(processed, tmp_path / "run", "data.seq_targets=teacher", *weights))
    module, dm = build_module(cfg), build_datamodule(cfg)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.seq_target is not None
    terms = module.compute_losses(batch)
    assert terms["aa_distill"].item() > 0 and torch.equal(terms["loss"], terms["aa_distill"])
    terms["loss"].backward()
    head_grads = [p.grad for n, p in module.named_parameters() if "seq" in n and p.grad is not None]
    assert head_grads and any(bool(g.abs().sum() > 0) for g in head_grads)
    with pytest.raises(ConfigError, match="aa_distill > 0 needs data.seq_targets"):
        build_module(compose_config("train", _overrides(processed, tmp_path / "r2", *weights)))
    with pytest.raises(ConfigError, match="aa_distill > 0 needs sequence targets"):  # called without targets
        module.compute_losses(type(batch)(**{**batch.__dict__, "seq_target": None}))

def test_train_writes_checkpoints_and_resumes(processed, tmp_path):
    run_dir = tmp_path / "run"
    run(compose_config("train", _overrides(processed, run_dir, "resume=auto")))  # nothing to resume: a fresh start
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run_dir / "config.yaml").is_file()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4 and ckpt["multiflow_config"]["model"]["node_dim"] == 32
    assert list((run_dir / "checkpoints").glob("best-*.ckpt")), "best checkpoint (by val/loss) missing"
    assert list((run_dir / "logs").glob("version_*/metrics.csv"))
    run(compose_config("train", _overrides(processed, run_dir, "resume=last", "trainer.max_steps=6")))
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 6
    run(compose_config("train", _overrides(processed, run_dir, "resume=auto", "trainer.max_steps=7")))  # a requeue
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 7


def test_resume_checkpoint_reads_last_auto_or_a_path(tmp_path):
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(None, last) is None and resume_checkpoint("auto", last) is None
    with pytest.raises(FileNotFoundError, match="does not exist.*resume=auto starts a fresh run"):
        resume_checkpoint("last", last)
    with pytest.raises(FileNotFoundError, match="other.ckpt does not exist"):
        resume_checkpoint(str(tmp_path / "other.ckpt"), last)
    last.parent.mkdir()
    last.write_bytes(b"")
    assert resume_checkpoint("auto", last) == resume_checkpoint("last", last) == str(last)


def test_bf16_mixed_precision_trains_with_float32_noising_and_losses(processed, tmp_path):
    """The GPU presets use trainer.precision=bf16-mixed; CPU autocast runs the same code path. The
    network may run in bfloat16, but the noised frames and every loss term stay float32 (a bfloat16
    rotation log or squared distance would round the loss itself)."""
    cfg = compose_config("train", _overrides(processed, tmp_path / "run"))
    module = build_module(cfg)
    dm = build_datamodule(cfg)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = module.compute_losses(batch)
    assert {v.dtype for v in terms.values()} == {torch.float32}
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    run_dir = tmp_path / "bf16"
    run(compose_config("train", _overrides(processed, run_dir, "trainer.precision=bf16-mixed", "trainer.max_steps=2")))
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2


def test_last_checkpoint_holds_the_final_step_off_the_save_interval(processed, tmp_path):
    # Periodic saves land on steps 2 and 4; the run stops at 5 (as a max_time stop would, between saves).
    run_dir = tmp_path / "run"
    run(compose_config("train", _overrides(processed, run_dir, "trainer.max_steps=5")))
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 5


def test_missing_data_and_empty_split_are_clear(processed, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(compose_config("train", _overrides(tmp_path / "nowhere", tmp_path / "r1")))
    from multiflow.errors import ConfigError

    with pytest.raises(ConfigError, match="empty"):
        run(compose_config("train", _overrides(processed, tmp_path / "r2", "data.val_splits=[nosuchsplit]")))


def test_sigterm_to_the_whole_process_group_saves_the_current_step(processed, tmp_path):
    """A scheduler's preemption (SLURM's scancel, ``kill -- -PGID``) signals every process of the job,
    DataLoader workers included. The workers must leave the signal to the main process: a worker
    killed by it makes the main process fail with "DataLoader worker ... killed" before Lightning's
    SIGTERM handling runs, and the steps since the last periodic save are lost."""
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "multiflow", "train", *_overrides(processed, run_dir),
           "trainer.max_steps=100000", "trainer.val_check_interval=5", "data.num_workers=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    time.sleep(2.0)  # a few steps past the periodic save, with the worker loading batches
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert "killed by signal" not in err, err[-3000:]
    assert "training stopped at step" in out, (out[-2000:], err[-3000:])
    step = int(out.split("training stopped at step")[1].split(";")[0])
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == step > 0


def test_cpu_ddp_two_processes(processed, tmp_path):
    """The distributed path is real: 2 gloo processes on CPU train and agree on the step count."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "multiflow", "train", *_overrides(processed, run_dir),
           "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2


def test_gpu_preset_runs_on_two_cpu_processes(processed, tmp_path):
    """experiment=multiflow_size as a GPU user launches it (DDP, bf16-mixed, its data settings), on 2
    gloo processes with a shrunken network: the preset's trainer and precision path is exercised."""
    run_dir = tmp_path / "gpu_preset"
    cmd = [sys.executable, "-m", "multiflow", "train", "experiment=multiflow_size", f"data.root={processed}",
           f"run_dir={run_dir}", "data.train_splits=[train]", "data.max_coil_fraction=1.0", "data.num_workers=0",
           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=2", "trainer.val_check_interval=1",
           "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
           "model.node_dim=32", "model.edge_dim=16", "model.num_blocks=1", "model.seq_heads=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["multiflow_config"]["trainer"]["precision"] == "bf16-mixed"


def test_export_and_load_checkpoint(processed, tmp_path):
    from multiflow.errors import MissingWeightsError
    from multiflow.training.checkpoint import export_checkpoint, load_checkpoint

    run_dir = tmp_path / "run"
    run(compose_config("train", _overrides(processed, run_dir, "trainer.max_steps=2")))
    slim = export_checkpoint(run_dir / "checkpoints" / "last.ckpt", tmp_path / "model.pt", note="test")
    a = load_checkpoint(run_dir / "checkpoints" / "last.ckpt", device="cpu")
    b = load_checkpoint(slim, device="cpu")
    assert b.meta["note"] == "test" and len(b.sha256) == 64
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # warm start from the slim file: the new run's first weights are the exported ones
    from multiflow.training.builders import build_module as _build
    from multiflow.training.train import warm_start

    fresh = _build(compose_config("train", _overrides(processed, tmp_path / "warm")))
    warm_start(fresh, str(slim))
    for (_, va), (_, vb) in zip(fresh.model.denoiser.state_dict().items(), b.model.denoiser.state_dict().items()):
        assert torch.equal(va, vb)
    from multiflow.errors import ConfigError

    other = _build(compose_config("train", _overrides(processed, tmp_path / "w2", "model=cpu_small")))
    with pytest.raises(ConfigError, match="different model config"):
        warm_start(other, str(slim))
    # switching on a zero-initialised feature is allowed: every old weight loads, the new one stays 0
    grown = _build(compose_config("train", _overrides(processed, tmp_path / "w3", "model.edge_atom_distances=true")))
    warm_start(grown, str(slim))
    grown_state = grown.model.denoiser.state_dict()
    assert not grown_state["edge_embedder.atom_geo.weight"].any()
    for key, value in b.model.denoiser.state_dict().items():
        assert torch.equal(grown_state[key], value)
    # adding a confidence head is allowed too: the old outputs are untouched, only the head is new
    headed = _build(compose_config("train", _overrides(processed, tmp_path / "w4", "model.confidence_head=true")))
    warm_start(headed, str(slim))
    headed_state = headed.model.denoiser.state_dict()
    assert {k for k in headed_state if k not in grown_state and k not in b.model.denoiser.state_dict()} == {
        k for k in headed_state if k.startswith("confidence_head.")}
    # and neighbour messages: every old weight loads, the message outputs stay zero (so nothing changes)
    messaged = _build(compose_config("train", _overrides(processed, tmp_path / "w5", "model.node_messages=true")))
    warm_start(messaged, str(slim))
    messaged_state = messaged.model.denoiser.state_dict()
    new_keys = {k for k in messaged_state if k not in b.model.denoiser.state_dict()}
    assert new_keys and all(".messages." in k for k in new_keys)
    assert all(not messaged_state[k].any() for k in new_keys if ".messages.out." in k)
    for key, value in b.model.denoiser.state_dict().items():
        assert torch.equal(messaged_state[key], value)
    with pytest.raises(MissingWeightsError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")


def test_sigterm_keeps_the_steps_since_the_last_periodic_save(processed, tmp_path):
    # SIGTERM (and Ctrl-C) end Lightning's fit with an exception, so train.run's save after fit never
    # runs; the SaveOnInterrupt callback must write last.ckpt at the step where training stopped.
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from multiflow.training.builders import build_trainer

    class Preempt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:  # periodic saves land on steps 2 and 4
                raise SIGTERMException()

    run_dir = tmp_path / "run"
    cfg = compose_config("train", _overrides(processed, run_dir, "trainer.max_steps=8"))
    trainer = build_trainer(cfg, run_dir)
    trainer.callbacks.append(Preempt())
    with pytest.raises(SIGTERMException):
        trainer.fit(build_module(cfg), datamodule=build_datamodule(cfg))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    assert "current_model_state" in ckpt, "the raw (non-EMA) weights must be kept so a resume continues exactly"


def test_progress_bar_shows_the_step_budget(processed, tmp_path, capsys):
    from types import SimpleNamespace

    from multiflow.training.builders import step_progress_bar

    bar = step_progress_bar()
    fake = SimpleNamespace(loggers=[], progress_bar_metrics={"train/loss": 1.5}, global_step=5, max_steps=10,
                           max_epochs=-1)
    bar._trainer = fake
    assert bar.get_metrics(fake, None) == {"step": "5/10", "train/loss": 1.5}
    if hasattr(bar, "validation_description"):  # rich's bar: no "Epoch 3/-2" for a run budgeted in steps
        assert bar._get_train_description(3).strip() == "Epoch 3"
    # and a real run renders with it
    run(compose_config("train", _overrides(processed, tmp_path / "run", "trainer.enable_progress_bar=true")))
    out = capsys.readouterr().out
    assert "step: 4/4" in out and "Epoch " in out and "/-2" not in out
