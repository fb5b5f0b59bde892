"""Sampling throughput of the text flow (tokens/s) at 64 and 256 steps, batch 16 x 256 tokens.

    python benchmarks/text_sampling.py                      # cpu_small-size denoiser, random weights
    python benchmarks/text_sampling.py --ckpt runs/text/flow/last.ckpt --threads 2

Speed does not depend on the weights except through logit reuse (a time-free model
recomputes only rows that changed since the last step), so a random model gives the cost
of the network and of the CTMC step; a trained checkpoint gives the realistic NFE.
Times are wall clock, best of ``--repeats`` (other processes on the machine inflate them).
"""

from __future__ import annotations

import argparse
import time

import torch

from multiflow.flows.discrete import DiscreteFlow
from multiflow.text.model import TokenDenoiser
from multiflow.text.sampling import sample_tokens


def _time_parts(model, flow, batch: int, length: int) -> tuple[float, float]:
    """Seconds of one network call and one CTMC step at t=0.5 (best of 3)."""
    x = torch.full((batch, length), flow.mask_token)
    t = torch.full((batch,), 0.5)
    nets, steps = [], []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            logits = model(x, t)
            nets.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            flow.step(x, logits, t, 1.0 / 64)
            steps.append(time.perf_counter() - t0)
    return min(nets), min(steps)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="TextFlowModule checkpoint (default: random cpu_small model)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.ckpt:
        from multiflow.text.checkpoint import load_text_checkpoint

        ck = load_text_checkpoint(args.ckpt)
        model, flow, name = ck.model, ck.flow, args.ckpt
    else:
        torch.manual_seed(0)
        model = TokenDenoiser(256, d_model=256, n_layers=4, n_heads=4, max_len=args.length).eval()
        flow, name = DiscreteFlow(256, noise="mask"), "random cpu_small denoiser (bytes)"
    net_s, step_s = _time_parts(model, flow, args.batch, args.length)
    print(f"model: {name}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"torch threads {args.threads}")
    print(f"one network call [{args.batch}x{args.length}]: {net_s * 1e3:.1f} ms; one CTMC step: {step_s * 1e3:.1f} ms")
    rows = []
    for steps in args.steps:
        for reuse in (True, False):
            best, nfe = float("inf"), 0
            for r in range(args.repeats):
                gen = torch.Generator().manual_seed(r)
                t0 = time.perf_counter()
                res = sample_tokens(model, flow, args.batch, args.length, steps, reuse_logits=reuse, generator=gen)
                best, nfe = min(best, time.perf_counter() - t0), res.nfe
            rows.append((steps, "yes" if reuse else "no", nfe, best, args.batch * args.length / best))
    print(f"{'steps':>5}  {'reuse':>5}  {'NFE':>4}  {'seconds':>8}  {'tokens/s':>9}")
    for steps, reuse, nfe, sec, tps in rows:
        print(f"{steps:>5}  {reuse:>5}  {nfe:>4}  {sec:>8.2f}  {tps:>9.1f}")


if __name__ == "__main__":
    main()
