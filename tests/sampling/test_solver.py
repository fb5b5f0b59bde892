"""The joint Euler sampler: an oracle model makes it return the data; fixed residues never move."""

from __future__ import annotations

import pytest
import torch

from multiflow.constants import MASK_TOKEN, NUM_AA
from multiflow.errors import ConfigError
from multiflow.flows.discrete import DiscreteFlow
from multiflow.flows.euclidean import from_flow_units, masked_mean
from multiflow.flows.so3 import SO3Flow
from multiflow.geometry import so3
from multiflow.sampling.solver import Conditioning, EulerSolver, FlowState, Prediction, SolverConfig
from tests.flows.structure_batch import random_batch


class Oracle:
    """Predicts the true data whatever the state; records what the solver passes in."""

    def __init__(self, target: Conditioning):
        self.target = target
        self.calls: list[dict] = []

    def __call__(self, state: FlowState, t: dict, **extras) -> Prediction:
        self.calls.append({"t": {k: v.clone() for k, v in t.items()}, "extras": extras, "state": state})
        logits = 30.0 * torch.nn.functional.one_hot(self.target.aatype_1.clamp(max=NUM_AA - 1), NUM_AA).float()
        return Prediction(self.target.trans_1, self.target.rots_1, logits)


def _masks(batch, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    none = torch.zeros_like(batch.res_mask)
    if task == "codesign":
        return none, none
    if task == "inverse_folding":
        return batch.res_mask.clone(), none
    if task == "forward_folding":
        return none, batch.res_mask.clone()
    motif = none.clone()
    motif[:, 3:7] = True  # a contiguous motif with structure and sequence
    seq_only = none.clone()
    seq_only[:, 9] = True
    return motif, motif | seq_only


def _check_fixed_every_step(states: list[FlowState], cond: Conditioning, fs: torch.Tensor, fa: torch.Tensor):
    for s in states:
        assert torch.equal(s.trans[fs], cond.trans_1[fs])
        assert torch.equal(s.rots[fs], cond.rots_1[fs])
        assert torch.equal(s.aatype[fa], cond.aatype_1[fa])


@pytest.mark.parametrize("task", ["codesign", "inverse_folding", "forward_folding", "motif"])
@pytest.mark.parametrize("schedule,purity,eta", [("linear", False, 0.0), ("exp", True, 1.0)])
def test_oracle_returns_the_data(task, schedule, purity, eta):
    batch = random_batch([14, 11, 8], seed=10)
    fs, fa = _masks(batch, task)
    cond = Conditioning.from_batch(batch, fs, fa)  # values for every residue, in the (motif-)centred frame
    target = cond
    oracle = Oracle(target)
    solver = EulerSolver(rots_flow=SO3Flow(schedule=schedule),
                         config=SolverConfig(num_steps=40, min_t=0.01, purity=purity, eta=eta))
    res = solver.sample(oracle, batch.res_mask, generator=torch.Generator().manual_seed(0), return_trajectory=True,
                        conditioning=cond)
    mask = batch.res_mask
    final = res.final
    trans_err = (from_flow_units(final.trans) - from_flow_units(target.trans_1)).norm(dim=-1)[mask]
    assert trans_err.max() < 1e-3  # Å
    assert so3.geodesic_distance(final.rots, target.rots_1)[mask].max() < 1e-3  # rad
    assert torch.equal(final.aatype[mask], target.aatype_1[mask])
    assert (final.aatype[~mask] == MASK_TOKEN).all() and torch.equal(final.trans[~mask], torch.zeros_like(final.trans[~mask]))
    assert len(res.states) == 41 and len(res.predictions) == 40 and res.times[-1] == 1.0
    _check_fixed_every_step(res.states, cond, fs, fa)
    # Per-modality clock: a fully fixed modality is at t = 1 at every step, the others follow the grid.
    for k, call in enumerate(oracle.calls):
        grid_t = res.times[k].float()
        expected_struct = torch.ones(3) if task == "inverse_folding" else grid_t.expand(3)
        assert torch.equal(call["t"]["trans"], expected_struct)
        expected_aa = torch.ones(3) if task == "forward_folding" else grid_t.expand(3)
        assert torch.equal(call["t"]["aa"], expected_aa)
        assert torch.equal(call["t"]["rots"], call["t"]["trans"])
        assert call["extras"]["conditioning"] is cond and torch.equal(call["extras"]["res_mask"], mask)


def test_motif_structure_stays_centred_at_the_origin():
    batch = random_batch([14, 11], seed=11)
    fs, fa = _masks(batch, "motif")
    cond = Conditioning.from_batch(batch, fs, fa)
    assert masked_mean(cond.trans_1, fs).abs().max() < 1e-5
    res = EulerSolver(config=SolverConfig(num_steps=5)).sample(Oracle(cond), batch.res_mask, return_trajectory=True,
                                                               conditioning=cond)
    _check_fixed_every_step(res.states, cond, fs, fa)


def test_uniform_token_noise_and_self_conditioning():
    batch = random_batch([9, 6], seed=12)
    target = Conditioning.from_batch(batch, torch.zeros_like(batch.res_mask), torch.zeros_like(batch.res_mask))
    oracle = Oracle(target)
    solver = EulerSolver(seq_flow=DiscreteFlow(NUM_AA, "uniform"), config=SolverConfig(num_steps=30, self_condition=True))
    res = solver.sample(oracle, batch.res_mask, generator=torch.Generator().manual_seed(1), return_trajectory=True)
    mask = batch.res_mask
    assert torch.equal(res.final.aatype[mask], target.aatype_1[mask])
    assert oracle.calls[0]["extras"]["self_condition"] is None
    for k in range(1, len(oracle.calls)):
        assert oracle.calls[k]["extras"]["self_condition"] is res.predictions[k - 1]
    assert "conditioning" not in oracle.calls[0]["extras"]  # nothing invented when nothing is fixed


class CountingModel(Oracle):
    """Predicts token k + 1 everywhere when its self-conditioning input predicts token k (token 0 without one)."""

    def __call__(self, state: FlowState, t: dict, **extras) -> Prediction:
        super().__call__(state, t, **extras)
        previous = extras.get("self_condition")
        token = 0 if previous is None else int(previous.logits.argmax(-1).flatten()[0]) + 1
        logits = torch.full((*state.aatype.shape, NUM_AA), -30.0)
        logits[..., token % NUM_AA] = 30.0
        return Prediction(self.target.trans_1, self.target.rots_1, logits)


@pytest.mark.parametrize("num_steps,recycles", [(1, 0), (1, 2), (2, 1), (3, 2)])
def test_recycles_chain_passes_at_the_same_state_and_time(num_steps, recycles):
    batch = random_batch([7, 5], seed=14)
    fs = batch.res_mask.clone()  # inverse folding: the structure is given
    cond = Conditioning.from_batch(batch, fs, torch.zeros_like(fs))
    model = CountingModel(cond)
    solver = EulerSolver(config=SolverConfig(num_steps=num_steps, self_condition=True, recycles=recycles,
                                             temperature=0.0))
    res = solver.sample(model, batch.res_mask, conditioning=cond, return_trajectory=True)
    passes = 1 + recycles
    assert len(model.calls) == num_steps * passes
    # every pass saw the previous pass's prediction, across steps too, so step k's last pass predicts
    # token (k + 1) * passes - 1, and each token unmasked at step k takes that value
    for k in range(num_steps):
        opened = (res.states[k].aatype == MASK_TOKEN) & (res.states[k + 1].aatype != MASK_TOKEN) & batch.res_mask
        assert torch.all(res.states[k + 1].aatype[opened] == (k + 1) * passes - 1)
    assert not (res.final.aatype[batch.res_mask] == MASK_TOKEN).any()
    for k in range(num_steps):
        step = model.calls[k * passes:(k + 1) * passes]
        for call in step[1:]:  # recycles: same state and times as the step's first pass
            assert call["state"] is step[0]["state"]
            assert all(torch.equal(call["t"][m], step[0]["t"][m]) for m in ("trans", "rots", "aa"))
        last_pass = int(res.predictions[k].logits.argmax(-1).flatten()[0])
        assert last_pass == (k + 1) * passes - 1  # the step used the last pass's prediction


def test_recycles_need_self_conditioning():
    with pytest.raises(ConfigError, match="self_condition"):
        SolverConfig(recycles=1, self_condition=False)
    with pytest.raises(ConfigError, match="recycles"):
        SolverConfig(recycles=-1, self_condition=True)


def test_temperature_zero_is_greedy_and_bad_inputs_raise():
    batch = random_batch([5], seed=13)
    target = Conditioning.from_batch(batch, torch.zeros_like(batch.res_mask), torch.zeros_like(batch.res_mask))
    solver = EulerSolver(config=SolverConfig(num_steps=3, temperature=0.0))
    res = solver.sample(Oracle(target), batch.res_mask)
    assert torch.equal(res.final.aatype, target.aatype_1) and res.states is None
    with pytest.raises(ValueError):
        solver.sample(Oracle(target), batch.res_mask, self_condition=None)
    with pytest.raises(ValueError):
        solver.sample(Oracle(target), batch.res_mask.long())
    with pytest.raises(ConfigError):
        SolverConfig(num_steps=0)


def test_time_grid():
    grid = EulerSolver(config=SolverConfig(num_steps=4, min_t=0.2)).time_grid()
    assert torch.allclose(grid, torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64))
    assert grid[-1] == 1.0


def test_the_model_sees_times_inside_its_training_range():
    """More grid points than 1 / min_t put grid times above 1 - min_t; the model must never see them,
    while given modalities are still reported at t = 1 and the Euler steps keep the grid's times."""
    batch = random_batch([9, 6], seed=3)
    cond = Conditioning.from_batch(batch, batch.res_mask.clone(), torch.zeros_like(batch.res_mask))  # inverse folding
    oracle = Oracle(cond)
    solver = EulerSolver(config=SolverConfig(num_steps=300, min_t=0.0), model_t_range=(0.01, 0.99))
    res = solver.sample(oracle, batch.res_mask, generator=torch.Generator().manual_seed(0), conditioning=cond)
    seen = [c["t"] for c in oracle.calls]
    aa_times = torch.stack([s["aa"] for s in seen])
    assert aa_times.min() == pytest.approx(0.01) and aa_times.max() == pytest.approx(0.99)
    assert (torch.stack([s["trans"] for s in seen]) == 1).all() and (torch.stack([s["rots"] for s in seen]) == 1).all()
    assert torch.equal(res.final.aatype[batch.res_mask], cond.aatype_1[batch.res_mask])  # still lands on the data
    with pytest.raises(ConfigError):
        EulerSolver(model_t_range=(0.5, 0.2))


def test_clash_guidance_lands_on_a_prediction_without_overlaps():
    """An oracle that always predicts a chain whose residues 0 and 6 overlap (2 Å apart): without
    guidance the sample is that chain; with full guidance the pair ends 3.5 Å apart and nothing
    else moves, since each step removes the overlap from the prediction it steps towards."""
    n = 8
    ca = torch.stack([torch.arange(n, dtype=torch.float32) * 3.8, torch.zeros(n), torch.zeros(n)], -1)
    ca[6] = torch.tensor([0.0, 2.0, 0.0])
    ca = ca - ca.mean(0)
    res_mask = torch.ones(1, n, dtype=torch.bool)
    target = Conditioning.none(res_mask)
    target = Conditioning(target.fixed_structure, target.fixed_sequence, ca[None] / 10.0, target.rots_1,
                          torch.zeros(1, n, dtype=torch.int64))
    plain = EulerSolver(config=SolverConfig(num_steps=20)).sample(Oracle(target), res_mask,
                                                                  generator=torch.Generator().manual_seed(0))
    assert torch.allclose(from_flow_units(plain.final.trans[0]), ca, atol=1e-4)
    guided = EulerSolver(config=SolverConfig(num_steps=20, clash_guidance=1.0)).sample(
        Oracle(target), res_mask, generator=torch.Generator().manual_seed(0))
    out = from_flow_units(guided.final.trans[0])
    assert torch.dist(out[0], out[6]) == pytest.approx(3.5, abs=1e-3)
    assert torch.allclose(out[[1, 2, 3, 4, 5, 7]], ca[[1, 2, 3, 4, 5, 7]], atol=1e-4)
    # two chains (0-3, 4-7): residues 3 and 4, the end of one and the start of the other, overlap and are
    # opened only when the solver is given the chain index the model gets
    ca2 = torch.stack([torch.arange(n, dtype=torch.float32) * 3.8, torch.zeros(n), torch.zeros(n)], -1)
    ca2[4:] = ca2[4:] - torch.tensor([3.8, -2.0, 0.0])  # residue 4 lands 2 Å from residue 3
    two = Conditioning(target.fixed_structure, target.fixed_sequence, ca2[None] / 10.0, target.rots_1,
                       target.aatype_1)
    chains = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    for given, want in ((None, 2.0), (chains, 3.5)):
        extras = {} if given is None else {"chain_index": given}
        res = EulerSolver(config=SolverConfig(num_steps=20, clash_guidance=1.0)).sample(
            Oracle(two), res_mask, generator=torch.Generator().manual_seed(0), **extras)
        out = from_flow_units(res.final.trans[0])
        assert torch.dist(out[3], out[4]) == pytest.approx(want, abs=1e-3)
    with pytest.raises(ConfigError):
        SolverConfig(clash_guidance=2.0)
