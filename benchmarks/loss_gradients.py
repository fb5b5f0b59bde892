"""How much each weighted loss term pulls on the shared weights; prints a table.

    python benchmarks/loss_gradients.py --checkpoint PATH --data processed [--batches 6] [overrides ...]

For a few real training batches (the task mixture, times and self-conditioning of the training
config, composed like ``multiflow train`` with the given Hydra overrides) it prints each term's
value and the L2 norm of the gradient of ``weight * term`` over all denoiser parameters, averaged
over the batches, next to the norm of the total. With AdamW every parameter's step is normalised,
so what a term gets out of a step in the shared trunk is roughly its share of these norms; with
``gradient_clip_val`` = 1 a total far above 1 also means every step is clipped.

Why it exists: on the 5,750-step bundled model with the weights of that time plus the new clash
term (aa 1, clash 50), the amino-acid gradient norm was 0.85 against a total of 3.5 (clash alone
2.0, translations 1.5): the trunk was learning mostly structure, and the sequence barely moved.
"""

from __future__ import annotations

import argparse

from multiflow.runtime import tune_process

tune_process()  # what the multiflow command does, before numpy and torch load

import torch

from multiflow.training.builders import build_datamodule, build_module
from multiflow.training.train import compose_config, warm_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="weights to measure (slim .pt or Lightning .ckpt)")
    parser.add_argument("--data", required=True, help="folder written by `multiflow preprocess`")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the training config, e.g. training.loss_weights.aa=4")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = compose_config("train", ["experiment=cpu_small", f"data.root={args.data}", "data.num_workers=0",
                                   f"seed={args.seed}", *args.overrides])
    module = build_module(cfg)
    warm_start(module, args.checkpoint)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    params = [p for p in module.model.parameters() if p.requires_grad]
    names = [n for n, w in module.loss_weights.items() if w]

    def grad_norm(value: torch.Tensor, retain: bool) -> float:
        grads = torch.autograd.grad(value, params, retain_graph=retain, allow_unused=True)
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))

    values = {n: 0.0 for n in names}
    norms = {n: 0.0 for n in [*names, "total"]}
    for _ in range(args.batches):
        terms = module.compute_losses(next(batches))
        for n in names:
            values[n] += float(terms[n]) / args.batches
            norms[n] += grad_norm(module.loss_weights[n] * terms[n], retain=True) / args.batches
        norms["total"] += grad_norm(terms["loss"], retain=False) / args.batches
    print(f"{args.batches} training batches, checkpoint {args.checkpoint}")
    print("| term | weight | mean value | gradient norm (weighted) | ÷ total norm |\n|---|---|---|---|---|")
    for n in names:
        print(f"| {n} | {module.loss_weights[n]:g} | {values[n]:.4f} | {norms[n]:.3f} | {norms[n] / norms['total']:.2f} |")
    print(f"| total | | | {norms['total']:.3f} | 1.00 |")


if __name__ == "__main__":
    main()
