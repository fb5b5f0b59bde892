"""Entry points of the text/code modality: ``train``, ``sample``, ``eval`` (Hydra overrides key=value).

    python -m multiflow.text.cli train experiment=cpu_small run_dir=runs/text/flow
    python -m multiflow.text.cli train experiment=cpu_small model=ar run_dir=runs/text/ar
    python -m multiflow.text.cli sample ckpt=runs/text/flow/last.ckpt 'template="import os\\n<<200>>"'
    python -m multiflow.text.cli eval ckpt=runs/text/flow/last.ckpt ar_ckpt=runs/text/ar/last.ckpt

Configs live in ``configs/text`` (``train.yaml``, ``sample.yaml``, ``eval.yaml``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from multiflow.errors import ConfigError, MultiflowError, describe_error

CONFIG_DIR = Path(os.environ.get("MULTIFLOW_TEXT_CONFIGS", Path(__file__).resolve().parents[2] / "configs" / "text"))


def compose_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``configs/text/<name>.yaml`` with Hydra overrides such as ``data.seq_len=128``."""
    from hydra import compose, initialize_config_dir

    if not (CONFIG_DIR / f"{name}.yaml").is_file():
        raise ConfigError(f"no text config {name!r} in {CONFIG_DIR}; set MULTIFLOW_TEXT_CONFIGS")
    with initialize_config_dir(version_base=None, config_dir=str(CONFIG_DIR)):
        return compose(config_name=name, overrides=list(overrides))


def _build_datamodule(data: dict, tokenizer_cfg: dict | None, run_dir: Path | None, tokenizer_obj=None,
                      max_eval_sequences: int | None = None):
    from multiflow.text.datamodule import TextDataModule

    tk = tokenizer_cfg or {"kind": "bytes", "vocab_size": 256, "cache": None}
    cache = tk.get("cache") or (str(run_dir / "tokenizer.json") if run_dir is not None else None)
    return TextDataModule(
        source=data["source"], pattern=data["pattern"], seq_len=data["seq_len"], batch_size=data["batch_size"],
        fractions=data["fractions"], exclude_dirs=data["exclude_dirs"], max_file_bytes=data["max_file_bytes"],
        tokenizer=tk["kind"], bpe_vocab_size=tk["vocab_size"], tokenizer_cache=cache,
        max_eval_sequences=max_eval_sequences if max_eval_sequences is not None else data["max_eval_sequences"],
        shift_per_epoch=data["shift_per_epoch"], num_workers=data["num_workers"], tokenizer_obj=tokenizer_obj)


def text_train(cfg: DictConfig) -> Path:
    """Train the flow denoiser (or the AR baseline if ``model`` is a CausalLM). Returns the run folder."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from multiflow.flows.discrete import DiscreteFlow
    from multiflow.text.checkpoint import build_meta
    from multiflow.text.model import CausalLM
    from multiflow.text.module import OptimConfig, TextARModule, TextFlowModule, Throughput
    from multiflow.training.builders import save_on_interrupt, step_progress_bar
    from multiflow.training.train import resume_checkpoint

    torch.set_num_threads(int(cfg.trainer.num_threads))
    L.seed_everything(int(cfg.seed), verbose=False)
    if cfg.resume and not cfg.run_dir:
        raise ConfigError(f"resume={cfg.resume} needs run_dir=<the run's folder> (its config, tokenizer and "
                          "last.ckpt are read from there)")
    run_dir = Path(cfg.run_dir or Path("runs/text") / time.strftime("%Y%m%d-%H%M%S"))
    ckpt_path = resume_checkpoint(cfg.resume, run_dir / "last.ckpt")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    container = OmegaConf.to_container(cfg, resolve=True)
    dm = _build_datamodule(container["data"], container["tokenizer"], run_dir)
    tok = dm.prepare()
    model = instantiate(cfg.model, vocab_size=tok.vocab_size)
    kind = "ar" if isinstance(model, CausalLM) else "flow"
    if kind == "flow" and cfg.flow.noise == "uniform" and not model.time_conditioned:
        raise ConfigError("uniform noise needs a time-conditioned denoiser (model.time_conditioned=true): a time-free "
                          "model cannot tell how much of its input is still noise, and its likelihood bound is infinite")
    meta = build_meta(kind, container["model"], tok.vocab_size, None if kind == "ar" else cfg.flow.noise, tok,
                      dm.corpus.manifest, container["data"], container)
    o = container["optim"]
    optim = OptimConfig(lr=o["lr"], weight_decay=o["weight_decay"], betas=tuple(o["betas"]),
                        warmup_steps=o["warmup_steps"], max_steps=o["max_steps"], min_lr_ratio=o["min_lr_ratio"],
                        grad_clip=o["grad_clip"])
    token_bytes = torch.from_numpy(tok.token_bytes())
    if kind == "ar":
        module = TextARModule(model, token_bytes, optim, meta)
    else:
        flow = DiscreteFlow(tok.vocab_size, noise=cfg.flow.noise)
        module = TextFlowModule(model, flow, token_bytes, optim, likelihood_weighting=cfg.flow.likelihood_weighting,
                                max_weight=cfg.flow.max_weight, val_t_samples=cfg.flow.val_t_samples, meta=meta)
    tr = cfg.trainer
    trainer = L.Trainer(
        accelerator=tr.get("accelerator", "auto"), devices=tr.get("devices", 1),
        strategy=tr.get("strategy", "auto"), num_nodes=tr.get("num_nodes", 1), max_steps=tr.max_steps, max_time=tr.max_time, max_epochs=-1,
        val_check_interval=tr.val_check_interval, check_val_every_n_epoch=None,
        limit_val_batches=tr.limit_val_batches, log_every_n_steps=tr.log_every_n_steps, precision=tr.precision,
        accumulate_grad_batches=tr.accumulate_grad_batches, gradient_clip_val=o["grad_clip"],
        enable_progress_bar=tr.enable_progress_bar, reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0,
        # a resumed run logs beside the first one's logs/metrics.csv instead of replacing it
        logger=CSVLogger(str(run_dir), name="logs", version="" if ckpt_path is None else
                         f"resumed-{time.strftime('%Y%m%d-%H%M%S')}"), enable_model_summary=False,
        callbacks=[Throughput(every=tr.log_every_n_steps),
                   ModelCheckpoint(dirpath=str(run_dir), save_last=True, save_top_k=0,
                                   every_n_train_steps=tr.val_check_interval),
                   save_on_interrupt(run_dir / "last.ckpt")]
                  + ([step_progress_bar()] if tr.enable_progress_bar else []))
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    wall = time.perf_counter() - t0
    trainer.save_checkpoint(str(run_dir / "last.ckpt"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    tokens_seen = trainer.global_step * tr.accumulate_grad_batches * dm.batch_size * dm.seq_len
    summary = {"kind": kind, "parameters": model.num_parameters(), "steps": trainer.global_step,
               "wall_seconds": wall, "tokens_seen": tokens_seen, "tokens_per_s": tokens_seen / max(wall, 1e-9),
               "corpus": dm.corpus.manifest, "metrics": metrics}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "corpus"}, indent=2))
    return run_dir


def _template_text(cfg: DictConfig) -> str:
    if cfg.get("template_file"):
        return Path(cfg.template_file).read_text(encoding="utf-8")
    # command lines cannot hold newlines easily: the two-character escapes \n and \t are expanded
    return str(cfg.template).replace("\\n", "\n").replace("\\t", "\t")


def text_sample(cfg: DictConfig) -> list[str]:
    """Unconditional / prefix / infill samples from a flow checkpoint (see ``sample.yaml``)."""
    from multiflow.text.checkpoint import load_text_checkpoint
    from multiflow.text.evaluate import model_device
    from multiflow.text.sampling import sample_texts

    torch.set_num_threads(int(cfg.num_threads))
    ck = load_text_checkpoint(cfg.ckpt, map_location=cfg.get("device", "auto"))
    if ck.kind != "flow":
        raise ConfigError(f"{cfg.ckpt} is an AR baseline checkpoint; text-sample needs a flow checkpoint")
    gen = torch.Generator(device=model_device(ck.model)).manual_seed(int(cfg.seed))
    texts, res = sample_texts(ck.model, ck.flow, ck.tokenizer, _template_text(cfg), int(cfg.n), int(cfg.steps),
                              temperature=float(cfg.temperature), eta=float(cfg.eta), purity=bool(cfg.purity),
                              generator=gen)
    sep = "\n" + "=" * 72 + "\n"
    print(sep.join(texts))
    print(f"# {len(texts)} samples, {res.steps} steps, {res.nfe} network evaluations", file=sys.stderr)
    if cfg.get("out"):
        Path(cfg.out).write_text(sep.join(texts), encoding="utf-8")
    return texts


def text_eval(cfg: DictConfig) -> dict:
    """NELBO bits/byte on held-out files, AR baseline bits/byte, and sample quality vs steps."""
    import numpy as np

    from multiflow.text.checkpoint import load_text_checkpoint
    from multiflow.text.evaluate import (ar_bits_per_byte, flow_bits_per_byte, format_table, model_device,
                                         sample_quality, steps_sweep)
    from multiflow.text.metrics import NGramIndex

    torch.set_num_threads(int(cfg.num_threads))
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split must be a held-out split ('val' or 'test'), got {cfg.split!r}")
    device = cfg.get("device", "auto")
    ck = load_text_checkpoint(cfg.ckpt, map_location=device)
    if ck.kind != "flow":
        raise ConfigError(f"ckpt={cfg.ckpt} must be a flow checkpoint (got {ck.kind}); pass the AR one as ar_ckpt")
    ar = load_text_checkpoint(cfg.ar_ckpt, map_location=device) if cfg.get("ar_ckpt") else None
    if ar is not None and ar.meta["tokenizer"] != ck.meta["tokenizer"]:
        raise ConfigError("the AR baseline uses a different tokenizer; bits per byte would not be comparable")
    dm = _build_datamodule(ck.meta["data"], None, None, tokenizer_obj=ck.tokenizer, max_eval_sequences=cfg.max_sequences)
    dm.prepare()
    seqs = torch.stack([dm.datasets[cfg.split][i] for i in range(len(dm.datasets[cfg.split]))])
    report: dict = {"ckpt": str(cfg.ckpt), "split": cfg.split, "corpus": dm.corpus.manifest,
                    "trained_on": ck.meta["corpus"]}
    tb = ck.tokenizer.token_bytes()
    gen = torch.Generator(device=model_device(ck.model)).manual_seed(int(cfg.seed))
    report["flow"] = flow_bits_per_byte(ck.model, ck.flow, seqs, tb, int(cfg.t_samples), int(cfg.batch_size), gen)
    if ar is not None:
        report["ar"] = ar_bits_per_byte(ar.model, seqs, tb, int(cfg.batch_size))
    index = None
    length = int(cfg.sample_len or dm.seq_len)
    if cfg.memorisation:
        train = dm.stream("train")
        limit = cfg.memorisation_max_train_tokens
        index = NGramIndex(train[: int(limit)] if limit else train, max_query=length)
    rng = np.random.default_rng(int(cfg.seed))
    stream = dm.stream(cfg.split)
    starts = rng.integers(0, max(1, stream.size - length), size=int(cfg.n_samples))
    report["reference_heldout"] = sample_quality([stream[s : s + length] for s in starts], ck.tokenizer, index,
                                                 bool(cfg.code))
    report["samples"] = steps_sweep(ck.model, ck.flow, ck.tokenizer, int(cfg.n_samples), length,
                                    list(cfg.sample_steps), index=index, code=bool(cfg.code),
                                    ar_model=ar.model if ar else None, temperature=float(cfg.temperature),
                                    eta=float(cfg.eta), seed=int(cfg.seed))
    out = Path(cfg.out) if cfg.get("out") else Path(cfg.ckpt).with_name("eval.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    _print_eval(report, format_table)
    return report


def _print_eval(report: dict, format_table) -> None:
    if "flow" in report:
        f = report["flow"]
        print(f"flow NELBO (upper bound on NLL): {f['nelbo_bpb']:.4f} bits/byte "
              f"({f['t_samples']} t samples/sequence, {f['n_bytes']} bytes of held-out files)")
    if "ar" in report:
        print(f"AR baseline NLL:                 {report['ar']['ar_bpb']:.4f} bits/byte (same sequences)")
    cols = ["steps", "nfe", "tokens_per_s", "parse_rate", "compile_rate", "unigram_entropy_bits", "distinct_2",
            "distinct_4", "copied_max", "copied_median", "gen_ar_bpb"]
    ref = dict(report["reference_heldout"], steps="data")
    print(format_table(report["samples"] + [ref], [c for c in cols if c in report["samples"][0] or c == "steps"]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multiflow text", description="Text/code modality of multiflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, default_cfg, helptext in (("train", "train", "train a flow denoiser or the AR baseline"),
                                        ("sample", "sample", "sample text (unconditional, prefix, infill)"),
                                        ("eval", "eval", "bits/byte on held-out files and sample quality")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config-name", default=default_cfg, help=f"config in {CONFIG_DIR} (default {default_cfg})")
        p.add_argument("--cfg", action="store_true", help="print the composed config and exit")
        p.add_argument("overrides", nargs="*", help="Hydra overrides key=value, e.g. data.seq_len=128")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(args.config_name, args.overrides)
        if args.cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        {"train": text_train, "sample": text_sample, "eval": text_eval}[args.command](cfg)
    except (MultiflowError, OSError) as err:
        print(f"error: {describe_error(err)}", file=sys.stderr)
        return 2
    return 0


def run_subcommand(name: str, argv: Sequence[str]) -> int:
    """``multiflow text-train|text-sample|text-eval ...`` -> ``main(["train"|"sample"|"eval", ...])``."""
    return main([name.removeprefix("text-"), *argv])


if __name__ == "__main__":
    sys.exit(main())
