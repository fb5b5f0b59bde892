"""The ``multiflow`` command: a dispatcher to each subcommand's ``main(argv)``. No logic here.

Each subcommand is imported only when it runs, so ``multiflow --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "preprocess": ("data_pipelines.preprocess", "turn a folder of PDB/mmCIF files into training examples"),
    "train": ("multiflow.training.train", "train a model with Hydra configs (overrides: key=value)"),
    "sample": ("multiflow.sampling.commands", "unconditional co-design of structure and sequence"),
    "inverse-fold": ("multiflow.sampling.commands", "design sequences for a given backbone (PDB/mmCIF)"),
    "fold": ("multiflow.sampling.commands", "predict backbones for FASTA sequences"),
    "scaffold": ("multiflow.sampling.commands", "motif scaffolding / inpainting from a contig string"),
    "evaluate": ("multiflow.evaluation.commands", "score a folder of designs (self-consistency, ESM, diversity)"),
    "text-train": ("multiflow.text.cli", "train a discrete-flow model on text or code"),
    "text-sample": ("multiflow.text.cli", "sample text or code from a trained text model"),
    "text-eval": ("multiflow.text.cli", "bits per byte and sample quality of a text model"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: multiflow <command> [options]   (multiflow <command> --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from multiflow import __version__

        print(f"multiflow {__version__}")
        return 0
    from multiflow.runtime import tune_process

    tune_process()  # passive OpenMP waits, allocator that keeps freed memory; before torch's import
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"multiflow: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    entry = getattr(module, "run_subcommand", None)
    if entry is not None:  # modules serving several subcommands get the name too
        return int(entry(name, rest) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
