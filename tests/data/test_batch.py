import numpy as np
import pytest
import torch

from multiflow.constants import MASK_TOKEN, UNK_TOKEN
from multiflow.data.batch import ChainExample, collate
from multiflow.errors import BadStructureError


def _example(n: int, name: str = "x") -> ChainExample:
    rng = np.random.default_rng(n)
    aatype = rng.integers(0, 20, n)
    aatype[0] = UNK_TOKEN
    return ChainExample(
        name=name, aatype=aatype, trans=rng.normal(size=(n, 3)).astype(np.float32),
        rots=np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy(),
        res_mask=np.ones(n, bool), residue_index=np.arange(n) + 5, chain_index=np.zeros(n, np.int64),
    )


def test_collate_pads_and_masks_unknown():
    batch = collate([_example(4), _example(7)])
    assert batch.aatype.shape == (2, 7)
    assert batch.res_mask.sum(1).tolist() == [4, 7]
    # padding and X are MASK in the flow vocabulary and excluded from the sequence loss
    assert (batch.aatype[0, 4:] == MASK_TOKEN).all() and batch.aatype[0, 0] == MASK_TOKEN
    assert not batch.seq_mask[0, 0] and batch.seq_mask[0, 1:4].all() and not batch.seq_mask[0, 4:].any()
    assert torch.equal(batch.rots[0, 5], torch.eye(3))


def test_crop_and_validation():
    ex = _example(10).crop(2, 5)
    assert ex.length == 5 and ex.residue_index[0] == 7
    bad = _example(3)
    with pytest.raises(BadStructureError, match="shape"):
        ChainExample(**{**bad.__dict__, "trans": np.zeros((2, 3), np.float32)})
    with pytest.raises(BadStructureError, match="non-finite"):
        ChainExample(**{**bad.__dict__, "trans": np.full((3, 3), np.nan, np.float32)})


def test_seq_targets_are_cropped_padded_and_never_mixed_with_their_absence():
    from dataclasses import replace

    probs = lambda n, seed: np.random.default_rng(seed).dirichlet(np.ones(20), n).astype(np.float32)  # noqa: E731
    a, b = replace(_example(4), seq_target=probs(4, 0)), replace(_example(7), seq_target=probs(7, 1))
    assert np.array_equal(b.crop(2, 3).seq_target, b.seq_target[2:5])
    batch = collate([a, b])
    assert batch.seq_target.shape == (2, 7, 20)
    assert torch.allclose(batch.seq_target[0, :4], torch.from_numpy(a.seq_target))
    assert (batch.seq_target[0, 4:] == 0).all()  # padding rows are zero, which the distillation loss skips
    assert batch.to("cpu").seq_target is not None and collate([_example(3)]).to("cpu").seq_target is None
    with pytest.raises(ValueError, match="not for"):
        collate([a, _example(5)])
    with pytest.raises(BadStructureError, match="shape"):
        replace(a, seq_target=probs(5, 2))
    with pytest.raises(BadStructureError, match="non-finite"):
        replace(a, seq_target=np.full((4, 20), np.nan, np.float32))
