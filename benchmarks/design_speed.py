"""Wall and CPU time of the design tasks on this machine, through the public API.

    python benchmarks/design_speed.py                                  # bundled weights, every task
    python benchmarks/design_speed.py --checkpoint runs/x/checkpoints/last.ckpt --ts50_limit 5
    python benchmarks/design_speed.py --random_init cpu_small         # speed only: untrained weights

Rows:
    co-design     8 designs of length 100 in one batch, ``--num_steps`` steps (target: < 15 s per design)
    inverse-fold  every TS50 chain (``../shared/data/structures/ts50``), 8 sequences each in one batch;
                  the mean sequence recovery is printed too (meaningless with --random_init)
    fold          10 TS50 sequences, one structure each, batched by the token budget
Columns: wall s, CPU s (process time over all threads), and both per design. The machine may be
shared: each row shows the load average when it started and the CPU steal share while it ran
(machine_state.py: time the virtual machine's host gave to other guests); with load above the
core count or high steal, wall times are upper bounds, and CPU s / --threads is the wall time
an idle machine would need.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_state import CpuWatch

TARGET_S_PER_DESIGN = 15.0


def _shared_data() -> Path:
    return Path(os.environ.get("MULTIFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))


def _random_checkpoint(preset: str, folder: Path) -> Path:
    """A randomly initialised checkpoint of a model preset (speed does not depend on the weights)."""
    import torch
    from omegaconf import OmegaConf

    from multiflow.models.config import DenoiserConfig
    from multiflow.models.denoiser import Denoiser
    from multiflow.training.train import compose_config

    cfg = OmegaConf.to_container(compose_config("train", [f"model={preset}"]), resolve=False)
    cfg.pop("run_dir", None)
    cfg = OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
    torch.manual_seed(0)
    state = Denoiser(DenoiserConfig.from_dict(cfg["model"])).state_dict()
    path = folder / f"{preset}-random.pt"
    torch.save({"format": "multiflow-model/1", "config": cfg, "state_dict": state, "meta": {"random_init": True}}, path)
    return path


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _row(task: str, designs: int, length: str, steps: int, wall: float, cpu: float, watch: CpuWatch,
         extra: str = "") -> str:
    return (f"{task:<13} {designs:>7} {length:>9} {steps:>5} {wall:>9.1f} {cpu:>9.1f} "
            f"{wall / designs:>10.2f} {cpu / designs:>10.2f} {watch.load:>5.1f} {watch.steal_text():>6}  {extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="weights (default: the bundled model)")
    parser.add_argument("--random_init", default=None, metavar="PRESET",
                        help="benchmark an untrained model of this preset (cpu_small, multiflow_size) instead")
    parser.add_argument("--num_steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--ts50_limit", type=int, default=None, help="inverse-fold only the first N TS50 chains")
    parser.add_argument("--tasks", default="codesign,inverse_fold,fold", help="comma-separated subset")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # rows appear as they finish
    from multiflow.runtime import tune_process

    tune_process()  # what the multiflow command does (MULTIFLOW_KEEP_MALLOC=1 opts out)
    import torch

    from multiflow.api import load_model
    from multiflow.data.io import read_structure
    from multiflow.errors import MultiflowError

    torch.set_num_threads(args.threads)
    tasks = set(args.tasks.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ckpt = _random_checkpoint(args.random_init, Path(tmp)) if args.random_init else args.checkpoint
            model = load_model(ckpt, device="cpu")
        except MultiflowError as err:
            print(f"error: {err}\n(for a speed-only run without weights: --random_init cpu_small)", file=sys.stderr)
            return 2
        settings = {"num_steps": args.num_steps, "max_tokens": 4000}
        model.generate(16, num_steps=2, seed=0)  # warm-up (allocator, lazy imports)
        print(f"model {model.model_label}  threads {args.threads}  steps {args.num_steps}")
        print(f"{'task':<13} {'designs':>7} {'length':>9} {'steps':>5} {'wall s':>9} {'CPU s':>9} "
              f"{'wall/des':>10} {'CPU/des':>10} {'load':>5} {'steal':>6}")
        verdict = None
        if "codesign" in tasks:
            with CpuWatch() as watch:
                _, wall, cpu = _timed(lambda: model.generate(100, num_samples=8, seed=0, **settings))
            print(_row("co-design", 8, "100", args.num_steps, wall, cpu, watch))
            verdict = (wall / 8, cpu / 8 / args.threads)
        ts50 = sorted((_shared_data() / "structures" / "ts50").glob("*.pdb*"))
        if "inverse_fold" in tasks and ts50:
            chains = ts50[: args.ts50_limit] if args.ts50_limit else ts50
            wall = cpu = 0.0
            recs, lengths = [], []
            with CpuWatch() as watch:
                for path in chains:
                    structure = read_structure(path)
                    lengths.append(sum(c.length for c in structure))
                    res, w, c = _timed(lambda s=structure: model.inverse_fold(s, batch_size=8, seed=0, **settings))
                    wall, cpu = wall + w, cpu + c
                    recs += [d.metrics["seq_rec"] for d in res]
            span = f"{min(lengths)}-{max(lengths)}"
            print(_row("inverse-fold", 8 * len(chains), span, args.num_steps, wall, cpu, watch,
                       f"{len(chains)} chains, mean seq_rec {sum(recs) / len(recs):.3f}"))
        if "fold" in tasks and ts50:
            seqs = [(p.name.split(".")[0], read_structure(p)[0].sequence) for p in ts50[:10]]
            with CpuWatch() as watch:
                _, wall, cpu = _timed(lambda: model.fold(seqs, seed=0, **settings))
            span = f"{min(len(s) for _, s in seqs)}-{max(len(s) for _, s in seqs)}"
            print(_row("fold", len(seqs), span, args.num_steps, wall, cpu, watch))
        if not ts50 and tasks - {"codesign"}:
            print(f"(TS50 not found under {_shared_data()}; set MULTIFLOW_SHARED_DATA)")
        if verdict is not None:
            ok = "meets" if verdict[0] < TARGET_S_PER_DESIGN else "misses"
            print(f"co-design of 100 residues: {verdict[0]:.1f} s wall per design ({ok} the "
                  f"{TARGET_S_PER_DESIGN:.0f} s target); CPU time / threads = {verdict[1]:.1f} s per design "
                  "on an idle machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
