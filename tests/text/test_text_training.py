"""A few training steps reduce the loss; the CLI trains, samples and evaluates end to end."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import masked_nelbo, uniform_nelbo
from multiflow.text.cli import compose_config, main, text_train
from multiflow.text.datamodule import TextDataModule
from multiflow.text.evaluate import flow_bits_per_byte
from multiflow.text.model import CausalLM, TokenDenoiser
from multiflow.text.module import OptimConfig, TextARModule, TextFlowModule
from multiflow.text.tokenizer import ByteTokenizer


def _write_corpus(root, n=30):
    for i in range(n):
        (root / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n\n\nclass C{i}:\n    pass\n" * 3)
    return root


def _nelbo(model, flow, batch):
    gen = torch.Generator().manual_seed(0)
    out = masked_nelbo(flow, lambda x, t: model(x, t.float()), batch, torch.ones_like(batch, dtype=torch.bool),
                       num_t_samples=8, generator=gen)
    return float(out["nats_per_token"])


def _trainer(steps):
    return L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)


def test_few_steps_reduce_flow_and_ar_losses(tmp_path):
    L.seed_everything(0, verbose=False)
    dm = TextDataModule(source=str(_write_corpus(tmp_path)), seq_len=32, batch_size=8, fractions=(0.8, 0.1, 0.1))
    tok = dm.prepare()
    batch = next(iter(dm.train_dataloader()))
    optim = OptimConfig(lr=3e-3, warmup_steps=5, max_steps=60)
    tb = torch.from_numpy(tok.token_bytes())
    flow = DiscreteFlow(tok.vocab_size)
    den = TokenDenoiser(tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_len=32)
    before = _nelbo(den, flow, batch)
    _trainer(60).fit(TextFlowModule(den, flow, tb, optim), datamodule=dm)
    assert _nelbo(den.eval(), flow, batch) < 0.8 * before
    ar = CausalLM(tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_len=32)
    with torch.no_grad():
        ar_before = float(ar.nll(batch).mean())
    _trainer(60).fit(TextARModule(ar, tb, optim, None), datamodule=dm)
    with torch.no_grad():
        assert float(ar.eval().nll(batch).mean()) < 0.8 * ar_before


def test_uniform_noise_model_gets_the_uniform_nelbo():
    """Held-out eval and validation of a uniform-noise model report uniform_nelbo in bits per byte."""
    torch.manual_seed(0)
    tb = ByteTokenizer().token_bytes()
    flow = DiscreteFlow(256, noise="uniform")
    den = TokenDenoiser(256, d_model=32, n_layers=1, n_heads=2, max_len=16, time_conditioned=True).eval()
    seqs = torch.randint(0, 256, (6, 16))
    report = flow_bits_per_byte(den, flow, seqs, tb, t_samples=3, batch_size=6,
                                generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        direct = uniform_nelbo(flow, lambda x, t: den(x, t.float()), seqs, torch.ones_like(seqs, dtype=torch.bool),
                               num_t_samples=3, generator=torch.Generator().manual_seed(4))
    bytes_ = float(torch.as_tensor(tb, dtype=torch.float64)[seqs].sum())
    assert abs(report["nelbo_bpb"] - float(direct["nats"].sum()) / math.log(2) / bytes_) < 1e-9
    assert math.isfinite(report["nelbo_bpb"]) and report["nelbo_bpb"] > 0
    module = TextFlowModule(den, flow, torch.from_numpy(tb), OptimConfig(), val_t_samples=2)
    module.on_validation_epoch_start()
    module.validation_step(seqs, 0)
    assert module._val_nats > 0 and module._val_bytes == bytes_


def test_cli_train_sample_eval(tmp_path, capsys):
    (tmp_path / "corpus").mkdir()
    corpus = _write_corpus(tmp_path / "corpus")
    common = [f"data.source={corpus}", "data.seq_len=32", "data.batch_size=4", "data.max_eval_sequences=8",
              "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "trainer.max_steps=4",
              "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
              "trainer.num_threads=1", "data.fractions=[0.6,0.2,0.2]"]
    run = text_train(compose_config("train", common + [f"run_dir={tmp_path / 'flow'}", "tokenizer=bpe",
                                                       "tokenizer.vocab_size=300"]))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and "val/bpb" in summary["metrics"]
    assert main(["train", *common, f"run_dir={tmp_path / 'ar'}", "model=ar", "tokenizer=bpe",
                 "tokenizer.vocab_size=300", f"tokenizer.cache={run / 'tokenizer.json'}"]) == 0
    capsys.readouterr()
    assert main(["sample", f"ckpt={run / 'last.ckpt'}", "n=2", "steps=4", "num_threads=1",
                 'template="def g(x):\\n<<6>>\\n"']) == 0
    assert capsys.readouterr().out.startswith("def g(x):\n")
    out = tmp_path / "eval.json"
    assert main(["eval", f"ckpt={run / 'last.ckpt'}", f"ar_ckpt={tmp_path / 'ar' / 'last.ckpt'}", "n_samples=2",
                 "sample_steps=[2,4]", "t_samples=2", "max_sequences=4", "num_threads=1", f"out={out}"]) == 0
    report = json.loads(out.read_text())
    assert report["flow"]["nelbo_bpb"] > 0 and report["ar"]["ar_bpb"] > 0 and report["flow"]["t_samples"] == 2
    assert [r["steps"] for r in report["samples"]] == [2, 4]
    assert main(["eval", "ckpt=/nonexistent.ckpt"]) == 2  # named error -> exit code 2


def test_uniform_noise_with_a_time_free_model_is_refused(tmp_path):
    (tmp_path / "corpus").mkdir()
    corpus = _write_corpus(tmp_path / "corpus")
    overrides = [f"data.source={corpus}", "data.seq_len=32", "flow=uniform", "model.time_conditioned=false",
                 f"run_dir={tmp_path / 'run'}", "trainer.num_threads=1", "data.fractions=[0.6,0.2,0.2]"]
    with pytest.raises(ConfigError, match="time-conditioned"):
        text_train(compose_config("train", overrides))


def test_text_training_resumes_and_keeps_the_steps_of_an_interrupted_run(tmp_path, monkeypatch):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    (tmp_path / "corpus").mkdir()
    corpus = _write_corpus(tmp_path / "corpus")
    run_dir = tmp_path / "run"
    common = [f"data.source={corpus}", "data.seq_len=32", "data.batch_size=4", "model.d_model=32", "model.n_layers=1",
              "model.n_heads=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
              "trainer.enable_progress_bar=false", "trainer.num_threads=1", "data.fractions=[0.6,0.2,0.2]",
              f"run_dir={run_dir}"]
    real_step = TextFlowModule.training_step

    def preempted(self, batch, batch_idx):  # SIGTERM as Lightning reports it, at step 3 (saves land on 2 and 4)
        if self.trainer.global_step == 3:
            raise SIGTERMException()
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(TextFlowModule, "training_step", preempted)
    with pytest.raises(SIGTERMException):
        text_train(compose_config("train", common + ["trainer.max_steps=8"]))
    assert torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 3
    monkeypatch.setattr(TextFlowModule, "training_step", real_step)
    run = text_train(compose_config("train", common + ["trainer.max_steps=6", "resume=last"]))
    assert json.loads((run / "summary.json").read_text())["steps"] == 6  # 3 before, 3 after the resume
    assert (run_dir / "logs" / "metrics.csv").is_file() and len(list((run_dir / "logs").glob("resumed-*"))) == 1
    with pytest.raises(ConfigError, match="needs run_dir"):
        text_train(compose_config("train", [*common[:-1], "resume=last"]))
    assert main(["train", *common[:-1], f"run_dir={tmp_path / 'empty'}", "resume=last"]) == 2  # no last.ckpt
