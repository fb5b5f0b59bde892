"""Datasets and the LightningDataModule over preprocessed chains (layout in docs/DESIGN.md).

Batches are formed by a *token budget*: each batch holds chains of similar length and at most
``max_tokens`` residues after padding (B × N_max), so short chains come in large batches and
long ones in small batches, and memory per step stays flat.

Sequence targets for distillation (optional): ``<root>/seq_targets/<name>/<example_id>.npy``,
[N, 20] float32 amino-acid probabilities of a teacher model per residue, written by
``python -m data_pipelines.seq_targets`` (see that module). With ``seq_targets=<name>`` the
examples that have one carry it (``ChainExample.seq_target``), the others carry zeros, which
the ``aa_distill`` loss term skips; a warning counts them, and an error stops a run where no
example has one.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, Sampler

from multiflow.data.batch import Batch, ChainExample, collate
from multiflow.constants import NUM_AA
from multiflow.errors import ConfigError
from multiflow.runtime import dataloader_worker_init

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitFilter:
    """Which processed chains a split keeps."""

    min_length: int = 40  # residues
    max_length: int = 512  # residues; longer chains are kept and cropped when crop_length is set
    max_coil_fraction: float = 1.0  # 0..1
    max_missing_fraction: float = 1.0  # 0..1

    def failed(self, row: dict[str, str], cropped: bool) -> str | None:
        """The first test a metadata row fails (a short reason), or None if the chain is kept."""
        length = int(row["length"])
        if length < self.min_length:
            return f"shorter than {self.min_length}"
        if not cropped and length > self.max_length:
            return f"longer than {self.max_length}"
        if float(row["coil_frac"]) > self.max_coil_fraction:
            return f"coil fraction > {self.max_coil_fraction}"
        if float(row["missing_frac"]) > self.max_missing_fraction:
            return f"missing fraction > {self.max_missing_fraction}"
        return None


def read_metadata(root: Path) -> list[dict[str, str]]:
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no metadata.csv in {root}: run `multiflow preprocess <pdb folder> --out {root}` first"
        )
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def split_ids(root: Path, split: str, rows: list[dict[str, str]]) -> set[str]:
    """Example ids of a split: from ``splits/<split>.txt`` if present, else the metadata's split column."""
    split_file = Path(root) / "splits" / f"{split}.txt"
    if split_file.is_file():
        return {line.strip() for line in split_file.read_text().splitlines() if line.strip()}
    return {row["example_id"] for row in rows if row.get("split") == split}


class ProcessedChainDataset(Dataset):
    """Chains of one or more splits of a processed folder, with optional random crop and rotation."""

    def __init__(
        self,
        root: str | Path,
        splits: list[str] | tuple[str, ...],
        filt: SplitFilter = SplitFilter(),
        crop_length: int | None = None,
        random_rotation: bool = True,
        seq_targets: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.splits = tuple(splits)
        if not self.root.is_dir():
            raise FileNotFoundError(f"processed data folder {self.root} does not exist")
        rows = read_metadata(self.root)
        wanted: set[str] = set()
        for split in splits:
            wanted |= split_ids(self.root, split, rows)
        self.rows, self.dropped = [], {}  # dropped: reason -> chains
        for row in rows:
            if row["example_id"] not in wanted:
                continue
            reason = filt.failed(row, cropped=crop_length is not None)
            if reason is None:
                self.rows.append(row)
            else:
                self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if not self.rows:
            raise ConfigError(
                f"split(s) {list(splits)} of {self.root} are empty after filtering "
                f"({len(wanted)} ids listed, {len(rows)} chains processed, {self.filter_summary()}; filter {filt})"
            )
        self.crop_length = crop_length
        self.random_rotation = random_rotation
        self.seq_target_dir = None
        if seq_targets is not None:
            self.seq_target_dir = seq_target_folder(self.root, seq_targets)
            missing = [r["example_id"] for r in self.rows if not (self.seq_target_dir / f"{r['example_id']}.npy").is_file()]
            hint = (f"write them with `python -m data_pipelines.seq_targets {self.root} --name {seq_targets} "
                    f"--splits {','.join(splits)}` or set data.seq_targets=null")
            if len(missing) == len(self.rows):
                raise ConfigError(f"no chain of split(s) {list(splits)} has a sequence target in {self.seq_target_dir}; {hint}")
            if missing:
                logger.warning("%d of %d chains of split(s) %s have no sequence target in %s (e.g. %s); the aa_distill "
                               "term skips them; %s", len(missing), len(self.rows), list(splits), self.seq_target_dir,
                               missing[:3], hint)

    def __len__(self) -> int:
        return len(self.rows)

    def filter_summary(self) -> str:
        """'kept K of L (dropped: n reason, ...)', L being the chains the splits list that were processed."""
        listed = len(self.rows) + sum(self.dropped.values())
        text = f"kept {len(self.rows):,} of {listed:,}"
        if self.dropped:
            text += " (dropped: " + ", ".join(f"{n:,} {why}" for why, n in sorted(self.dropped.items())) + ")"
        return text

    def lengths(self) -> np.ndarray:
        """Residue counts after cropping, used for token-budget batching."""
        raw = np.array([int(r["length"]) for r in self.rows])
        return np.minimum(raw, self.crop_length) if self.crop_length else raw

    def __getitem__(self, idx: int) -> ChainExample:
        row = self.rows[idx]
        with np.load(self.root / row["example_path"]) as data:
            example = ChainExample.from_npz(dict(data), name=row["example_id"])
        if self.seq_target_dir is not None:
            path = self.seq_target_dir / f"{row['example_id']}.npy"
            target = np.load(path) if path.is_file() else np.zeros((example.length, NUM_AA), np.float32)
            if target.shape != (example.length, NUM_AA):
                raise ConfigError(f"sequence target of {row['example_id']} has shape {target.shape}, expected "
                                  f"{(example.length, NUM_AA)}: written for another preprocessing? write it again")
            example = replace(example, seq_target=target.astype(np.float32))
        # training draws from torch's RNG (seeded per worker by Lightning/seed_everything);
        # evaluation (random_rotation=False) crops deterministically from the start
        rng = np.random.default_rng([int(torch.randint(0, 2**31 - 1, ())), idx]) if self.random_rotation else None
        if self.crop_length and example.length > self.crop_length:
            start = int(rng.integers(0, example.length - self.crop_length + 1)) if rng is not None else 0
            example = example.crop(start, self.crop_length)
        if rng is not None:
            example = randomly_rotate(example, rng)
        return example


def seq_target_folder(root: str | Path, name: str) -> Path:
    """Where the sequence targets called ``name`` of a processed folder live."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"a sequence-target name is a plain folder name, got {name!r}")
    return Path(root) / "seq_targets" / name


def randomly_rotate(example: ChainExample, rng: np.random.Generator) -> ChainExample:
    """Apply one uniformly random global rotation about the centre of the present CA atoms."""
    from multiflow.geometry.so3 import uniform

    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    rot = uniform((), generator=gen, dtype=torch.float64).numpy()  # [3, 3]
    centre = example.trans[example.res_mask].mean(axis=0)
    trans = (example.trans - centre) @ rot.T
    rots = np.einsum("ij,njk->nik", rot, example.rots)
    return replace(example, trans=trans.astype(np.float32), rots=rots.astype(np.float32))


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches of at most ``max_tokens`` padded residues (and ``max_batch_size``).

    Distributed-aware: each rank takes every ``world_size``-th batch of one shared, seeded
    order, and all ranks see the same number of batches (DDP needs equal step counts).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        max_tokens: int,
        max_batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if max_tokens < int(lengths.max()):
            raise ConfigError(
                f"max_tokens={max_tokens} is smaller than the longest chain ({int(lengths.max())} residues); "
                "raise data.max_tokens or set data.crop_length"
            )
        self.lengths = np.asarray(lengths)
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._rank, self._world = rank, world_size
        self._skip = 0  # batches of this rank to leave out of the next iteration (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> "TokenBudgetBatchSampler":
        """Itself. Lightning sets the epoch of ``dataloader.batch_sampler.sampler``, never of the batch
        sampler: without this every epoch would repeat epoch 0's batches in epoch 0's order. (The
        trainer configs keep ``use_distributed_sampler: false``, so Lightning does not replace it.)"""
        return self

    def resume(self, epoch: int, batches_seen: int) -> int:
        """Continue an interrupted run: the next iteration is epoch ``epoch`` without the batches of it
        that were already trained on, ``batches_seen`` being this rank's batches over all epochs so far.

        Returns how many batches of the epoch are left out. When the count does not fit the epoch
        (a run whose epochs Lightning cut short, e.g. ``limit_train_batches``) the epoch starts over.
        """
        before = sum(self._rank_length(e) for e in range(epoch))
        done = batches_seen - before
        self.epoch = epoch
        self._skip = done if 0 <= done <= self._rank_length(epoch) else 0
        return self._skip

    def _dist(self) -> tuple[int, int]:
        if self._rank is not None and self._world is not None:
            return self._rank, self._world
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _all_batches(self, epoch: int | None = None) -> list[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch if epoch is None else epoch))
        # sort by length with random tie-breaking so buckets differ between epochs
        jitter = rng.random(len(self.lengths)) if self.shuffle else np.zeros(len(self.lengths))
        order = np.lexsort((jitter, self.lengths))
        batches, current, longest = [], [], 0
        for idx in order:
            length = int(self.lengths[idx])
            new_longest = max(longest, length)
            if current and (new_longest * (len(current) + 1) > self.max_tokens or len(current) >= self.max_batch_size):
                batches.append(current)
                current, new_longest = [], length
            current.append(int(idx))
            longest = new_longest
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _rank_length(self, epoch: int | None = None) -> int:
        return math.ceil(len(self._all_batches(epoch)) / self._dist()[1])

    def __iter__(self):
        rank, world = self._dist()
        skip, self._skip = self._skip, 0
        batches = self._all_batches()
        per_rank = math.ceil(len(batches) / world)
        padded = batches + batches[: per_rank * world - len(batches)]  # repeat a few so ranks match
        yield from padded[rank::world][skip:]

    def __len__(self) -> int:
        # the whole epoch, also when resuming inside it: Lightning counts the batches already done
        return self._rank_length()


class ProteinDataModule(L.LightningDataModule):
    """Train/val loaders over a processed folder. Components get typed arguments, not a cfg."""

    def __init__(
        self,
        root: str,
        train_splits: tuple[str, ...] = ("train",),
        val_splits: tuple[str, ...] = ("val",),
        max_tokens: int = 4096,
        max_batch_size: int = 64,
        crop_length: int | None = 256,
        min_length: int = 40,
        max_length: int = 512,
        max_coil_fraction: float = 1.0,
        max_missing_fraction: float = 1.0,
        num_workers: int = 0,
        seed: int = 0,
        seq_targets: str | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.train_splits, self.val_splits = tuple(train_splits), tuple(val_splits)
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size
        self.crop_length = crop_length
        self.filt = SplitFilter(min_length, max_length, max_coil_fraction, max_missing_fraction)
        self.num_workers, self.seed = num_workers, seed
        self.seq_targets = seq_targets

    def setup(self, stage: str | None = None) -> None:
        self.train_set = ProcessedChainDataset(self.root, self.train_splits, self.filt, self.crop_length, True,
                                               self.seq_targets)
        self.val_set = (
            ProcessedChainDataset(self.root, self.val_splits, self.filt, self.crop_length, False, self.seq_targets)
            if self.val_splits else None
        )
        for name, dataset in (("train", self.train_set), ("val", self.val_set)):
            if dataset is not None:
                rank_zero_info(f"{name} chains ({'+'.join(dataset.splits)}): {dataset.filter_summary()}")

    def _loader(self, dataset: ProcessedChainDataset, shuffle: bool) -> DataLoader:
        sampler = TokenBudgetBatchSampler(
            dataset.lengths(), self.max_tokens, self.max_batch_size, shuffle=shuffle, seed=self.seed
        )
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, worker_init_fn=dataloader_worker_init if self.num_workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader(self.train_set, shuffle=True)
        trainer = self.trainer
        if trainer is not None and trainer.global_step > 0:
            # Resumed (Lightning restores the step and epoch before it asks for loaders): continue the
            # interrupted epoch's seeded order where it stopped. Without this a DataLoader worker draws
            # epoch 0's order before Lightning sets the epoch, and the epoch replays its first batches
            # while never reaching its last ones.
            seen = trainer.global_step * trainer.accumulate_grad_batches
            skipped = loader.batch_sampler.resume(trainer.current_epoch, seen)
            rank_zero_info(f"resuming at epoch {trainer.current_epoch}, after its first {skipped} batches")
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set is not None else []

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return batch.to(device) if isinstance(batch, Batch) else super().transfer_batch_to_device(batch, device, dataloader_idx)
