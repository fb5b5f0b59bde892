"""LightningDataModule over a text corpus: files -> split by file -> tokens -> packed windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from multiflow.errors import ConfigError
from multiflow.runtime import dataloader_worker_init
from multiflow.text.dataset import SPLITS, CorpusFiles, PackedSequences, load_corpus, tokenize_stream
from multiflow.text.tokenizer import BPETokenizer, ByteTokenizer, load_tokenizer, save_tokenizer


def evenly_spaced_windows(stream: np.ndarray, seq_len: int, k: int) -> np.ndarray:
    """Keep ``k`` of the packed windows, spread evenly over the whole split (not just its first files)."""
    n = stream.size // seq_len
    if n <= k:
        return stream
    picks = np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))
    return stream[: n * seq_len].reshape(n, seq_len)[picks].ravel()


def build_tokenizer(kind: str, train_texts: Sequence[str], vocab_size: int = 4096,
                    cache: str | Path | None = None) -> ByteTokenizer:
    """Byte tokenizer, or a BPE trained on ``train_texts`` (reused from ``cache`` if present)."""
    if kind == "bytes":
        return ByteTokenizer()
    if kind != "bpe":
        raise ConfigError(f"tokenizer kind must be 'bytes' or 'bpe', got {kind!r}")
    if cache is not None and Path(cache).is_file():
        tok = load_tokenizer(cache)
        if tok.vocab_size == vocab_size:
            return tok
    tok = BPETokenizer.train(train_texts, vocab_size=vocab_size)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tok, cache)
    return tok


class TextDataModule(L.LightningDataModule):
    """Packed fixed-length token windows from one corpus; the split is by file.

    Call :meth:`prepare` (idempotent) before building the model: it fixes the tokenizer
    and therefore the vocabulary size. Training windows move by a different offset each
    epoch (``shift_per_epoch`` tokens) so the model sees new boundaries.
    """

    def __init__(self, source: str = "stdlib", pattern: str = "**/*.py", seq_len: int = 256,
                 batch_size: int = 16, fractions: Sequence[float] = (0.9, 0.05, 0.05),
                 exclude_dirs: Sequence[str] | None = None, max_file_bytes: int | None = 1_000_000,
                 tokenizer: str = "bytes", bpe_vocab_size: int = 4096, tokenizer_cache: str | None = None,
                 max_eval_sequences: int | None = 256, shift_per_epoch: int = 97, num_workers: int = 0,
                 tokenizer_obj: ByteTokenizer | None = None) -> None:
        super().__init__()
        self.source, self.pattern, self.seq_len, self.batch_size = source, pattern, int(seq_len), int(batch_size)
        self.fractions = tuple(fractions)
        self.exclude_dirs = None if exclude_dirs is None else tuple(exclude_dirs)
        self.max_file_bytes = max_file_bytes
        self.tokenizer_kind, self.bpe_vocab_size, self.tokenizer_cache = tokenizer, int(bpe_vocab_size), tokenizer_cache
        self.max_eval_sequences = max_eval_sequences
        self.shift_per_epoch, self.num_workers = int(shift_per_epoch), int(num_workers)
        self.tokenizer: ByteTokenizer | None = tokenizer_obj
        self.corpus: CorpusFiles | None = None
        self.datasets: dict[str, PackedSequences] = {}

    def prepare(self) -> ByteTokenizer:
        """Find files, fix the tokenizer, tokenize and pack all splits. Returns the tokenizer."""
        if self.datasets:
            return self.tokenizer
        self.corpus = load_corpus(self.source, self.pattern, self.fractions, self.exclude_dirs, self.max_file_bytes)
        texts = {s: self.corpus.read(s) for s in SPLITS}
        if self.tokenizer is None:
            self.tokenizer = build_tokenizer(self.tokenizer_kind, texts["train"], self.bpe_vocab_size,
                                             self.tokenizer_cache)
        for split in SPLITS:
            stream = tokenize_stream(texts[split], self.tokenizer)
            if split != "train" and self.max_eval_sequences is not None:
                stream = evenly_spaced_windows(stream, self.seq_len, self.max_eval_sequences)
            self.datasets[split] = PackedSequences(stream, self.seq_len)
        if len(self.datasets["train"]) == 0:
            raise ConfigError(f"the training split has fewer than seq_len={self.seq_len} tokens; "
                              "use a larger corpus or a shorter seq_len")
        return self.tokenizer

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def vocab_size(self) -> int:
        return self.prepare().vocab_size

    def stream(self, split: str) -> np.ndarray:
        """The whole packed token stream of a split (int64 numpy)."""
        self.prepare()
        return self.datasets[split].stream.numpy()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.prepare()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise ConfigError(f"split {split!r} has no complete sequence of {self.seq_len} tokens")
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle and len(ds) >= self.batch_size,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          worker_init_fn=dataloader_worker_init if self.num_workers else None)

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self.prepare()
        self.datasets["train"].set_shift(epoch * self.shift_per_epoch)
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
