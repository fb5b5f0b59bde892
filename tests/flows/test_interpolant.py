"""Interpolant: task mixture frequencies, per-task times and fixed masks, exact fixed residues, centring."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from multiflow.constants import MASK_TOKEN, TRANS_SCALE
from multiflow.errors import ConfigError
from multiflow.flows.euclidean import EuclideanFlow, masked_mean
from multiflow.flows.interpolant import (Interpolant, InterpolantConfig, PartialConfig, Task, TaskMixture,
                                         centre_targets)

from .structure_batch import random_batch

MIN_T = 0.01


def _interpolant(mixture: TaskMixture, **kw) -> Interpolant:
    return Interpolant(InterpolantConfig(min_t=MIN_T, mixture=mixture, **kw))


def _only(task: Task) -> TaskMixture:
    w = [0.0] * 4
    w[int(task)] = 1.0
    return TaskMixture(*w)


def test_task_frequencies_match_the_mixture():
    mixture = TaskMixture(codesign=0.4, inverse_folding=0.1, forward_folding=0.2, partial=0.3)
    tasks = _interpolant(mixture).sample_tasks(20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(tasks, minlength=4).double()
    assert chisquare(counts.numpy(), (mixture.probabilities() * 20000).numpy()).pvalue > 1e-3


def test_mixture_validation():
    with pytest.raises(ConfigError):
        TaskMixture(0, 0, 0, 0)
    with pytest.raises(ConfigError):
        TaskMixture(codesign=-1.0, partial=2.0)
    with pytest.raises(ConfigError):
        InterpolantConfig(min_t=0.6)
    with pytest.raises(ConfigError):
        PartialConfig(min_fraction=0.6, max_fraction=0.5)


def test_inverse_folding_keeps_the_structure_at_the_data():
    batch = random_batch([12, 9, 5], seed=1)
    noisy = _interpolant(_only(Task.INVERSE_FOLDING)).corrupt(batch, torch.Generator().manual_seed(1))
    assert (noisy.task == Task.INVERSE_FOLDING).all()
    assert torch.equal(noisy.t_trans, torch.ones(3)) and torch.equal(noisy.t_rots, torch.ones(3))
    assert ((noisy.t_aa >= MIN_T) & (noisy.t_aa <= 1 - MIN_T)).all()
    assert torch.equal(noisy.fixed_structure, batch.res_mask) and not noisy.fixed_sequence.any()
    assert torch.equal(noisy.trans_t, noisy.trans_1) and torch.equal(noisy.rots_t, noisy.rots_1)
    assert (noisy.aatype_t == MASK_TOKEN).any()
    assert not noisy.free_structure.any()


def test_forward_folding_keeps_the_sequence_at_the_data():
    batch = random_batch([12, 9, 5], seed=2)
    noisy = _interpolant(_only(Task.FORWARD_FOLDING)).corrupt(batch, torch.Generator().manual_seed(2))
    assert torch.equal(noisy.t_aa, torch.ones(3))
    assert torch.equal(noisy.t_trans, noisy.t_rots) and (noisy.t_trans < 1).all()
    assert torch.equal(noisy.fixed_sequence, batch.res_mask) and not noisy.fixed_structure.any()
    assert torch.equal(noisy.aatype_t, noisy.aatype_1)
    assert not torch.equal(noisy.trans_t, noisy.trans_1)


def test_codesign_shares_one_time_and_stays_centred():
    batch = random_batch([12, 9, 5, 7], seed=3)
    noisy = _interpolant(_only(Task.CODESIGN)).corrupt(batch, torch.Generator().manual_seed(3))
    assert torch.equal(noisy.t_trans, noisy.t_rots) and torch.equal(noisy.t_trans, noisy.t_aa)
    assert not noisy.fixed_structure.any() and not noisy.fixed_sequence.any()
    assert masked_mean(noisy.trans_t, batch.res_mask).abs().max() < 1e-5
    assert masked_mean(noisy.trans_1, batch.res_mask).abs().max() < 1e-5
    # Å -> nm at the boundary, once.
    com = masked_mean(batch.trans, batch.res_mask)
    assert torch.allclose(noisy.trans_1, (batch.trans - com[:, None]) / TRANS_SCALE * batch.res_mask[..., None], atol=1e-6)
    pad = ~batch.res_mask
    assert torch.equal(noisy.trans_t[pad], torch.zeros_like(noisy.trans_t[pad]))
    assert torch.equal(noisy.rots_t[pad], torch.eye(3).expand(int(pad.sum()), 3, 3))
    assert (noisy.aatype_t[pad] == MASK_TOKEN).all()


def test_separate_times_per_modality():
    batch = random_batch([6] * 8, seed=4)
    noisy = _interpolant(_only(Task.CODESIGN), separate_t_prob=1.0).corrupt(batch, torch.Generator().manual_seed(4))
    assert not torch.equal(noisy.t_trans, noisy.t_rots) and not torch.equal(noisy.t_trans, noisy.t_aa)


def test_masking_fraction_matches_the_time():
    batch = random_batch([50] * 200, seed=5)
    noisy = _interpolant(_only(Task.CODESIGN)).corrupt(batch, torch.Generator().manual_seed(5))
    masked = (noisy.aatype_t == MASK_TOKEN).double().mean(-1)  # [B]
    residual = masked - (1 - noisy.t_aa.double())  # mean 0, std per sample <= sqrt(0.25/50)
    assert abs(float(residual.mean())) < 4 * (0.25 / 50 / 200) ** 0.5


def test_unknown_residues_stay_masked_even_when_fixed():
    batch = random_batch([20, 20], seed=6, unknown=0.3)
    for task in (Task.CODESIGN, Task.FORWARD_FOLDING):
        noisy = _interpolant(_only(task)).corrupt(batch, torch.Generator().manual_seed(6))
        assert (noisy.aatype_t[~batch.seq_mask] == MASK_TOKEN).all()
        assert not noisy.free_sequence[~batch.seq_mask].any()


@pytest.mark.parametrize("contiguous", [0.0, 1.0])
def test_partial_conditioning_fixes_residues_exactly_and_centres_on_the_motif(contiguous):
    partial = PartialConfig(min_fraction=0.1, max_fraction=0.6, max_segments=3, contiguous_prob=contiguous,
                            fix_weights=(1.0, 1.0, 1.0))
    batch = random_batch([30, 24, 17, 2] * 10, seed=7)
    noisy = _interpolant(_only(Task.PARTIAL), partial=partial).corrupt(batch, torch.Generator().manual_seed(7))
    fs, fa, mask = noisy.fixed_structure, noisy.fixed_sequence, batch.res_mask
    assert not (fs & ~mask).any() and not (fa & ~mask).any()
    subset = fs | fa
    sizes, present = subset.sum(-1), mask.sum(-1)
    assert ((sizes >= 1) & (sizes <= present - 1)).all()
    assert (fs.any(-1) & fa.any(-1)).any() and (fs.any(-1) & ~fa.any(-1)).any() and (~fs.any(-1) & fa.any(-1)).any()
    # Fixed residues are exactly the data; the motif's centre of mass is the origin.
    assert torch.equal(noisy.trans_t[fs], noisy.trans_1[fs]) and torch.equal(noisy.rots_t[fs], noisy.rots_1[fs])
    assert torch.equal(noisy.aatype_t[fa], noisy.aatype_1[fa])
    has_motif = fs.any(-1)
    assert masked_mean(noisy.trans_1, fs)[has_motif].abs().max() < 1e-5
    assert masked_mean(noisy.trans_1, mask)[~has_motif].abs().max() < 1e-5
    # Free residues are noised; the prior noise is centred over them.
    t = noisy.t_trans[:, None, None]
    free = mask & ~fs
    noise = (noisy.trans_t - t * noisy.trans_1) / (1 - t)
    assert masked_mean(noise, free).abs().max() < 1e-4
    if contiguous == 1.0:  # at most max_segments runs of consecutive residues
        runs = (subset[:, 1:] & ~subset[:, :-1]).sum(-1) + subset[:, 0].long()
        assert (runs <= 3).all() and (runs >= 1).all()


def test_centre_targets_convention():
    x = torch.tensor([[[2.0, 0, 0], [4.0, 0, 0], [9.0, 0, 0]]] * 2)
    mask = torch.ones(2, 3, dtype=torch.bool)
    fixed = torch.tensor([[True, True, False], [False, False, False]])
    out = centre_targets(x, mask, fixed)
    assert torch.equal(out[0, :, 0], torch.tensor([-1.0, 1.0, 6.0]))
    assert torch.equal(out[1, :, 0], torch.tensor([-3.0, -1.0, 4.0]))


def test_minibatch_ot_in_corrupt_skips_motif_samples():
    batch = random_batch([10] * 6, seed=8)
    ot = Interpolant(InterpolantConfig(mixture=TaskMixture(1, 0, 0, 1)), trans_flow=EuclideanFlow(ot=True))
    noisy = ot.corrupt(batch, torch.Generator().manual_seed(8))
    fs = noisy.fixed_structure
    assert torch.equal(noisy.trans_t[fs], noisy.trans_1[fs])
    assert masked_mean(noisy.trans_t, batch.res_mask)[~fs.any(-1)].abs().max() < 1e-5
