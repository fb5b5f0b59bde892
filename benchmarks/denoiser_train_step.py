"""Time of one training step (forward + backward + AdamW) of the denoiser on CPU.

    python benchmarks/denoiser_train_step.py --preset cpu_small --batch 4 --length 128 [--bf16]

The loss is a stand-in (squared outputs): the point is the cost of the network, not of the
flows. Prints best / median wall and CPU time per step and the peak RSS of the process.
``--bf16`` runs the forward pass under CPU autocast (bfloat16), what ``trainer.precision=bf16-mixed``
does. ``--compile`` wraps the denoiser in ``torch.compile(dynamic=True)`` (the first, untimed step
compiles). On the 2-core machine (2026-12-07, batch 12 x 128, 5 timed steps) it read best/median
0.540/0.701 s per step against 0.693/0.744 s eager, after a 266 s first step: too little, with the
compile cost and the recompiles variable lengths would bring, for the trainer to use it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from denoiser_speed import _random_input
from machine_state import CpuWatch


def main(argv: list[str] | None = None) -> None:
    import torch

    from multiflow.models import Denoiser, DenoiserConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu_small")
    parser.add_argument("--attention", default="sparse", choices=["sparse", "dense"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="forward under torch.autocast('cpu', bfloat16)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser (dynamic shapes)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.preset(args.preset, attention=args.attention)).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    num_parameters = model.num_parameters()
    if args.compile:
        model = torch.compile(model, dynamic=True)
    one = _random_input(args.length)
    inp = one.replace(**{
        name: getattr(one, name).expand(args.batch, *getattr(one, name).shape[1:]).clone()
        for name in ("aatype", "t_trans", "t_rots", "t_aa", "residue_index", "residue_mask",
                     "self_cond_trans", "self_cond_aa")
    }, frames=type(one.frames)(one.frames.rots.expand(args.batch, -1, -1, -1).clone(),
                               one.frames.trans.expand(args.batch, -1, -1).clone()))
    wall, cpu, first = [], [], 0.0
    with CpuWatch() as watch:
        for step in range(args.steps + 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = model(inp)
            loss = out.trans.square().mean() + out.aa_logits.square().mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            if step:  # the first step warms up (and compiles)
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            else:
                first = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    residues = args.batch * args.length
    precision = ("bf16 autocast" if args.bf16 else "float32") + (", compiled" if args.compile else "")
    print(f"{args.preset} ({num_parameters / 1e6:.2f}M params, {args.attention}, {precision}), batch {args.batch} x "
          f"N {args.length}, {args.threads} threads, {watch.summary()}: {residues / min(wall):.0f} residues/s; step wall best "
          f"{min(wall):.3f} s / median {statistics.median(wall):.3f} s, cpu best {min(cpu):.3f} s, first step {first:.1f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
