"""Training throughput of the text flow denoiser (tokens/s) for a few model sizes; plans a 1-hour budget.

    python benchmarks/text_training.py --threads 2 --steps 8

Each row times full optimizer steps (flow.sample_path + forward + token_loss + backward +
AdamW) on random byte sequences. ``wall tok/s`` is what this machine gave right now;
``cpu tok/s x threads`` divides by process CPU time and multiplies by the thread count, an
estimate of the unshared-machine speed when other jobs are competing for the cores.
"""

from __future__ import annotations

import argparse
import time

import torch

from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.losses import token_loss
from multiflow.text.model import TokenDenoiser
from multiflow.text.module import stratified_times

SIZES = {"tiny": (64, 2, 2), "d128x4": (128, 4, 2), "d192x4": (192, 4, 3), "cpu_small": (256, 4, 4)}


def measure(d_model: int, n_layers: int, n_heads: int, batch: int, length: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = TokenDenoiser(256, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=length)
    flow = DiscreteFlow(256)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x1 = torch.randint(0, 256, (batch, length))
    wall, cpu = [], []
    for _ in range(steps + 1):  # the first step warms up allocators and is dropped
        w0, c0 = time.perf_counter(), time.process_time()
        t = stratified_times(batch, x1.device)
        x_t = flow.sample_path(x1, t)
        loss = token_loss(flow, model(x_t, t), x1, x_t, t, torch.ones_like(x1, dtype=torch.bool),
                          likelihood_weighting=True, max_weight=None)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    n_tok = batch * length
    w, c = sorted(wall[1:])[len(wall[1:]) // 2], sorted(cpu[1:])[len(cpu[1:]) // 2]
    return {"params": sum(p.numel() for p in model.parameters()), "wall_tps": n_tok / w, "cpu_tps": n_tok / c}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8, help="timed optimizer steps per size (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch} x {args.length} tokens, {args.threads} threads, median of {args.steps} steps")
    print(f"{'size':>10}  {'params':>9}  {'wall tok/s':>10}  {'cpu tok/s x threads':>19}  {'steps/hour (wall)':>17}")
    for name in args.sizes:
        r = measure(*SIZES[name], args.batch, args.length, args.steps)
        est = r["cpu_tps"] * args.threads
        per_hour = 3600 * r["wall_tps"] / (args.batch * args.length)
        print(f"{name:>10}  {r['params']:>9,}  {r['wall_tps']:>10.0f}  {est:>19.0f}  {per_hour:>17.0f}")


if __name__ == "__main__":
    main()
