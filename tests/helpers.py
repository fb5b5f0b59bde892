"""Small builders shared by tests."""

import csv

import numpy as np


def _helix_ca(n, rng):
    """CA positions of an ideal alpha helix (3.8 Å steps) with small noise, Å."""
    i = np.arange(n)
    ca = np.stack([2.3 * np.cos(i * 1.745), 2.3 * np.sin(i * 1.745), 1.5 * i], -1)
    return (ca + rng.normal(scale=0.1, size=ca.shape)).astype(np.float32)


def write_processed(root, lengths, split="train", coil_frac=0.3):
    """A processed folder (docs/DESIGN.md layout) of random chains with helix-like CA spacing.

    ``split`` is one split name for all chains or one name per chain; ``coil_frac`` (the metadata
    column the coil filter reads) one value for all chains or one per chain.
    """
    (root / "examples").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i, n in enumerate(lengths):
        eid = f"ex{i}"
        path = root / "examples" / f"{eid}.npz"
        rots = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3))
        np.savez_compressed(
            path, aatype=rng.integers(0, 20, n), trans=_helix_ca(n, rng),
            rots=rots, res_mask=np.ones(n, bool), residue_index=np.arange(n), chain_index=np.zeros(n, np.int64),
        )
        rows.append(dict(example_id=eid, length=n, missing_frac=0.0,
                         coil_frac=coil_frac if isinstance(coil_frac, float) else coil_frac[i],
                         example_path=f"examples/{eid}.npz", split=split if isinstance(split, str) else split[i]))
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def at_sampling_batch(monkeypatch, k, action):
    """Run ``action()`` (raise, send a signal...) when the sampling engine starts its k-th batch (1-based)."""
    import multiflow.sampling.engine as engine

    real, calls = engine._run_batch, []

    def batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_batch", batch)


def raising(exc):
    """An action for :func:`at_sampling_batch` that raises ``exc``."""
    def action():
        raise exc
    return action
