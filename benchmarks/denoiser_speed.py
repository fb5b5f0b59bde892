"""Forward speed, peak memory and achieved GFLOP/s of the denoiser on CPU.

    python benchmarks/denoiser_speed.py                       # both presets, N = 100..1000
    python benchmarks/denoiser_speed.py --presets multiflow_size --lengths 100 300 --repeats 5

Every (preset, attention, N) runs in a fresh subprocess (batch 1, ``--threads`` torch threads,
``torch.inference_mode``), so its peak RSS is its own. Columns:
    time  best / median wall time of one forward, s (after one warm-up forward)
    cpu   best process CPU time of one forward, s (all threads summed; less sensitive to other
          jobs than wall time, but spin-waiting threads inflate it)
    GFLOP  matmul FLOPs of one forward (``torch.utils.flop_counter``: linear, bmm, SDPA;
           elementwise ops not counted), so GFLOP/s is a lower bound on achieved throughput
    %peak  GFLOP/s against ``--peak-gflops`` (2 Zen-3 cores with AVX2 FMA: ~115 fp32)
    GF/cpu-s  GFLOP per CPU-second: throughput per busy core, robust to other jobs
           (single-core fp32 peak ~57; with 2 threads, spin-waiting lowers it)
    peak RSS  high-water mark of the whole process, MB; fwd MB = that minus the RSS just
           before the forward passes (model and inputs excluded)
Dense attention is skipped where its N² pair tensors would exceed ``--dense-budget-gb``.
The machine may be shared: the 1-minute load average and the CPU steal share (machine_state.py:
time the virtual machine's host gave to other guests) are printed per row; treat times as
upper bounds when the load is above ~0.5 or the steal above a few per cent. The children tune
glibc's allocator as the ``multiflow`` command does (multiflow/runtime.py: large temporaries
are reused instead of page-faulted in on every forward); ``--keep-malloc`` measures without.
On a loaded machine
run with ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP threads whose partner was preempted made
2-thread forwards up to 20x slower at load ~8 (N=100: 9.5 s active vs 0.46 s passive).
Reference (published MultiFlow, 21.8M parameters, this class of machine): 0.84 s at N=100,
10.2 s at N=300.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_state import CpuWatch


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _random_input(length: int, seed: int = 0):
    import torch

    from multiflow.constants import NUM_AA
    from multiflow.geometry import so3
    from multiflow.geometry.rigid import Rigid
    from multiflow.models import DenoiserInput

    g = torch.Generator().manual_seed(seed)
    trans = torch.cumsum(0.38 * torch.randn(1, length, 3, generator=g), dim=1)  # random walk, nm
    return DenoiserInput(
        frames=Rigid(so3.uniform((1, length), generator=g), trans),
        aatype=torch.randint(0, NUM_AA + 1, (1, length), generator=g),
        t_trans=torch.rand(1, generator=g), t_rots=torch.rand(1, generator=g), t_aa=torch.rand(1, generator=g),
        residue_index=torch.arange(length)[None], residue_mask=torch.ones(1, length, dtype=torch.bool),
        self_cond_trans=trans + 0.1 * torch.randn(1, length, 3, generator=g),
        self_cond_aa=torch.softmax(torch.randn(1, length, NUM_AA, generator=g), -1),
    )


def run_child(preset: str, attention: str, length: int, threads: int, repeats: int) -> dict:
    """One measurement in this process; returns a JSON-able dict."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from multiflow.models import Denoiser, DenoiserConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.preset(preset, attention=attention)).eval()
    inp = _random_input(length)
    rss_before = _current_rss_mb()
    times, cpu = [], []
    with torch.inference_mode():
        model(inp)  # warm-up
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            model(inp)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: KiB)
        with FlopCounterMode(display=False) as counter:
            model(inp)
    return {
        "preset": preset, "attention": attention, "N": length, "params": model.num_parameters(),
        "best_s": min(times), "median_s": statistics.median(times), "cpu_s": min(cpu),
        "load": os.getloadavg()[0], "gflop": counter.get_total_flops() / 1e9,
        "peak_rss_mb": peak_rss, "fwd_mb": peak_rss - rss_before,
    }


def dense_memory_gb(preset: str, length: int) -> float:
    """Rough size of the dense path's largest live pair tensors (edge features + hidden + RBFs), GB."""
    from multiflow.models import DenoiserConfig

    cfg = DenoiserConfig.preset(preset)
    per_pair = cfg.edge_dim * (2 + cfg.edge_hidden_mult) + 3 * cfg.num_rbf + 12 + 4 * cfg.ipa_heads
    return length * length * per_pair * 4 / 1e9


def _spawn(preset: str, attention: str, length: int, args: argparse.Namespace) -> dict:
    with CpuWatch() as watch:
        row = _run_child(preset, attention, length, args)
    return {**row, "steal": watch.steal_text()}


def _run_child(preset: str, attention: str, length: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", preset, attention, str(length),
           "--threads", str(args.threads), "--repeats", str(args.repeats)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
    if args.keep_malloc:
        env["MULTIFLOW_KEEP_MALLOC"] = "1"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"preset": preset, "attention": attention, "N": length, "error": done.stderr.strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(r: dict, peak: float) -> str:
    if "error" in r:
        return f"| {r['preset']} | {r['attention']} | {r['N']} | failed: {r['error']} |"
    if "skipped" in r:
        return f"| {r['preset']} | {r['attention']} | {r['N']} | skipped ({r['skipped']}) | | | | | | | | | |"
    gflops = r["gflop"] / r["best_s"]
    return (f"| {r['preset']} | {r['attention']} | {r['N']} | {r['best_s']:.3f} / {r['median_s']:.3f} | "
            f"{r['cpu_s']:.3f} | {r['gflop']:.1f} | {gflops:.1f} | {100 * gflops / peak:.0f}% | {r['gflop'] / r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['fwd_mb']:.0f} | {r['load']:.1f} | {r['steal']} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cpu_small", "multiflow_size"])
    parser.add_argument("--attention", nargs="+", default=["sparse", "dense"], choices=["sparse", "dense"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[100, 200, 300, 500, 1000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-gflops", type=float, default=115.0)
    parser.add_argument("--dense-budget-gb", type=float, default=4.0)
    parser.add_argument("--keep-malloc", action="store_true",
                        help="leave glibc's allocator untuned in the children (default: tuned as by the CLI)")
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "ATTENTION", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from multiflow.runtime import tune_process

        tune_process()  # as the multiflow command does; MULTIFLOW_KEEP_MALLOC=1 (--keep-malloc) opts out
        preset, attention, length = args.child
        print(json.dumps(run_child(preset, attention, int(length), args.threads, args.repeats)))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}  (threads={args.threads}, batch=1, "
          f"repeats={args.repeats}, keep_malloc={args.keep_malloc})")
    print("| preset | attention | N | wall best / median (s) | cpu (s) | GFLOP | GFLOP/s | %peak | GF/cpu-s "
          "| peak RSS MB | fwd MB | load | steal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        for attention in args.attention:
            for length in args.lengths:
                if attention == "dense" and dense_memory_gb(preset, length) > args.dense_budget_gb:
                    est = dense_memory_gb(preset, length)
                    row = {"preset": preset, "attention": attention, "N": length, "skipped": f"~{est:.1f} GB pairs"}
                else:
                    row = _spawn(preset, attention, length, args)
                print(_row(row, args.peak_gflops), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
