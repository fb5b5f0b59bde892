"""Rebuild model, flow and tokenizer from a text checkpoint (self-contained: no config files needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from multiflow.errors import ConfigError, MissingWeightsError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.text.tokenizer import tokenizer_from_dict

META_KEY = "multiflow_text"


@dataclass
class TextCheckpoint:
    kind: str  # "flow" or "ar"
    model: nn.Module  # in eval mode
    flow: DiscreteFlow | None  # None for the AR baseline
    tokenizer: object
    meta: dict  # model/flow/tokenizer/data settings and the corpus manifest


def build_meta(kind: str, model_cfg: dict, vocab_size: int, noise: str | None, tokenizer, corpus: dict,
               data_cfg: dict, config: dict) -> dict:
    """What a checkpoint stores besides weights."""
    return {"kind": kind, "model": model_cfg, "vocab_size": int(vocab_size), "noise": noise,
            "tokenizer": tokenizer.to_dict(), "corpus": corpus, "data": data_cfg, "config": config}


def load_text_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> TextCheckpoint:
    """Load a checkpoint written by ``text_train``; the model is put on ``map_location`` ("auto": CUDA if any)."""
    from multiflow.training.checkpoint import resolve_device

    map_location = resolve_device(map_location)
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"text checkpoint {path} not found; train one with `multiflow text-train`")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    meta = ckpt.get(META_KEY)
    if meta is None:
        raise ConfigError(f"{path} is not a multiflow text checkpoint (no '{META_KEY}' entry)")
    model = instantiate(meta["model"], vocab_size=meta["vocab_size"])
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    model.to(map_location).eval()
    flow = DiscreteFlow(meta["vocab_size"], noise=meta["noise"]) if meta["kind"] == "flow" else None
    return TextCheckpoint(meta["kind"], model, flow, tokenizer_from_dict(meta["tokenizer"]), meta)
