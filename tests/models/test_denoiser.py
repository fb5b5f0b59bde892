"""Denoiser: SE(3) invariance/equivariance, batch permutation, padding, dense = sparse, gradients.

Tolerances. The network is exactly invariant in real arithmetic: it centres the input on the
masked CA mean, reads geometry only through distances, frame-local coordinates and relative
rotations, and composes its frame updates on the right. In float32 a global motion changes
each input coordinate by ~1 ulp (~1e-7 relative); two blocks of LayerNorms and attention
amplify that to at most ~1e-6 (measured over 10 seeds, both attention modes), so float32
checks use atol 2e-5 (logits; nm for translations), a 20x margin. In float64 the same
measurement gives ~1e-15, checked at atol 1e-12: the float32 error is round-off only.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from multiflow.constants import NUM_AA
from multiflow.errors import ConfigError
from multiflow.geometry.rigid import Rigid
from multiflow.models import Denoiser, DenoiserConfig, DenoiserOutput
from tests.models.helpers import moved, random_input, random_rotations, tiny_model


def _check_equivariant(model, inp, atol):
    dtype = inp.frames.trans.dtype
    rot = random_rotations((), dtype=dtype)
    shift = torch.tensor([4.0, -3.0, 2.5], dtype=dtype)  # nm
    with torch.no_grad():
        out = model(inp)
        out_m = model(moved(inp, rot, shift))
    torch.testing.assert_close(out_m.aa_logits, out.aa_logits, atol=atol, rtol=0)
    torch.testing.assert_close(out_m.trans, out.trans @ rot.T + shift, atol=atol, rtol=0)
    torch.testing.assert_close(out_m.rots, rot @ out.rots, atol=atol, rtol=0)
    torch.testing.assert_close(out_m.confidence, out.confidence, atol=atol, rtol=0)
    # the frames really moved away from the input, so equivariance is not trivially true
    assert (out.trans - inp.frames.trans).abs().max() > 1e-2


def test_output_types_and_shapes():
    model = tiny_model()
    inp = random_input(batch=2, length=12)
    out = model(inp)
    assert isinstance(out, DenoiserOutput) and isinstance(out.frames, Rigid)
    assert out.frames.shape == (2, 12)
    assert out.trans.shape == (2, 12, 3) and out.rots.shape == (2, 12, 3, 3)
    assert out.aa_logits.shape == (2, 12, NUM_AA)  # no logit for MASK
    assert out.confidence.shape == (2, 12) and ((out.confidence >= 0) & (out.confidence <= 1)).all()
    eye = torch.eye(3).expand(2, 12, 3, 3)
    torch.testing.assert_close(out.rots @ out.rots.transpose(-1, -2), eye, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ["sparse", "dense"])
def test_se3_invariance_and_equivariance_float32(attention):
    _check_equivariant(tiny_model(attention=attention), random_input(), atol=2e-5)


def test_se3_invariance_and_equivariance_float64():
    _check_equivariant(tiny_model(dtype=torch.float64), random_input(dtype=torch.float64), atol=1e-12)


def test_batch_permutation():
    model = tiny_model()
    inp = random_input(batch=3, length=10)
    perm = torch.tensor([2, 0, 1])
    permuted = inp.replace(
        frames=inp.frames[perm], aatype=inp.aatype[perm], t_trans=inp.t_trans[perm], t_rots=inp.t_rots[perm],
        t_aa=inp.t_aa[perm], residue_index=inp.residue_index[perm], residue_mask=inp.residue_mask[perm],
        self_cond_trans=inp.self_cond_trans[perm], self_cond_aa=inp.self_cond_aa[perm],
    )
    with torch.no_grad():
        out, out_p = model(inp), model(permuted)
    torch.testing.assert_close(out_p.aa_logits, out.aa_logits[perm], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_p.trans, out.trans[perm], atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ["sparse", "dense"])
def test_padding_does_not_change_real_residues(attention):
    model = tiny_model(attention=attention)
    inp = random_input(batch=1, length=9)
    pad = 6
    g = torch.Generator().manual_seed(3)

    def padded(x, fill):
        return torch.cat([x, fill], dim=1)

    rots = random_rotations((1, pad))
    padded_inp = inp.replace(
        frames=Rigid(padded(inp.frames.rots, rots), padded(inp.frames.trans, 50 * torch.randn(1, pad, 3, generator=g))),
        aatype=padded(inp.aatype, torch.randint(0, 21, (1, pad), generator=g)),
        residue_index=padded(inp.residue_index, torch.arange(pad)[None] + 3),
        residue_mask=padded(inp.residue_mask, torch.zeros(1, pad, dtype=torch.bool)),
        self_cond_trans=padded(inp.self_cond_trans, torch.randn(1, pad, 3, generator=g)),
        self_cond_aa=padded(inp.self_cond_aa, torch.rand(1, pad, NUM_AA, generator=g)),
    )
    with torch.no_grad():
        out, out_p = model(inp), model(padded_inp)
    torch.testing.assert_close(out_p.aa_logits[:, :9], out.aa_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_p.trans[:, :9], out.trans, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_p.rots[:, :9], out.rots, atol=1e-5, rtol=0)
    assert torch.isfinite(out_p.trans).all() and torch.isfinite(out_p.aa_logits).all()


def test_dense_and_sparse_agree_when_k_covers_all_residues():
    inp = random_input(batch=2, length=10)
    dense = tiny_model(attention="dense")
    sparse = tiny_model(attention="sparse", k_neighbors=10)  # K = min(N, k + 2s + 1) = N
    sparse.load_state_dict(dense.state_dict())
    with torch.no_grad():
        a, b = dense(inp), sparse(inp)
        for block in sparse.blocks:
            block.ipa.masked_dense_max_n = 0
        c = sparse(inp)
    for other in (b, c):
        torch.testing.assert_close(other.aa_logits, a.aa_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(other.trans, a.trans, atol=1e-5, rtol=0)


def test_gradient_reaches_every_parameter():
    model = tiny_model().train()
    # the confidence head's output layer starts at zero (so a warm start can add it), which blocks the
    # gradient to its hidden layer until the first update; give it that update by hand
    torch.nn.init.normal_(model.confidence_head[-1].weight, std=0.1)
    out = model(random_input())
    loss = out.trans.square().sum() + out.rots.sum() + out.aa_logits.square().sum() + out.confidence.sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


def test_self_conditioning_inputs_are_used_and_optional():
    model = tiny_model()
    with_sc = random_input(self_cond=True)
    without = with_sc.replace(self_cond_trans=None, self_cond_aa=None)
    with torch.no_grad():
        a, b = model(with_sc), model(without)
    assert not torch.allclose(a.aa_logits, b.aa_logits)
    off = tiny_model(self_condition=False)
    with torch.no_grad():  # a model without self-conditioning ignores the inputs
        torch.testing.assert_close(off(with_sc).aa_logits, off(without).aa_logits)


def test_multichain_input_and_per_sample_times():
    model = tiny_model()
    inp = random_input(batch=2, length=12)
    chain = torch.tensor([[0] * 6 + [1] * 6, [0] * 12])
    inp = inp.replace(chain_index=chain, t_trans=torch.tensor([1.0, 0.2]), t_aa=torch.tensor([0.0, 1.0]))
    with torch.no_grad():
        out = model(inp)
        out_single = model(inp.replace(chain_index=torch.zeros_like(chain)))
    assert torch.isfinite(out.aa_logits).all()
    assert not torch.allclose(out.aa_logits[0], out_single.aa_logits[0])  # chain break is seen
    torch.testing.assert_close(out.aa_logits[1], out_single.aa_logits[1])


def test_bad_input_raises_named_errors():
    inp = random_input(batch=2, length=5)
    with pytest.raises(ValueError, match="residue_mask must have shape"):
        inp.replace(residue_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="aatype must lie in"):
        inp.replace(aatype=torch.full((2, 5), 21))
    with pytest.raises(ValueError, match="t_aa must have shape"):
        inp.replace(t_aa=torch.rand(3))
    with pytest.raises(ConfigError, match="attention"):
        DenoiserConfig(attention="global")
    with pytest.raises(ConfigError, match="unknown denoiser config keys"):
        DenoiserConfig.from_dict({"node_dims": 3})


@pytest.mark.parametrize(("name", "low", "high"), [("cpu_small", 1.0e6, 2.0e6), ("multiflow_size", 18e6, 22e6)])
def test_presets_load_and_have_the_advertised_size(name, low, high):
    cfg = DenoiserConfig.preset(name)
    n_params = Denoiser(cfg).num_parameters()
    assert low <= n_params <= high


def test_fixed_flags_reach_the_model_and_default_to_zero():
    model = tiny_model()
    inp = random_input(batch=2, length=12)
    none = torch.zeros_like(inp.residue_mask)
    motif = none.clone()
    motif[:, 3:7] = True
    with torch.no_grad():
        out_default = model(inp)
        out_zero = model(inp.replace(fixed_structure=none, fixed_sequence=none))
        out_motif = model(inp.replace(fixed_structure=motif))
    torch.testing.assert_close(out_default.aa_logits, out_zero.aa_logits)
    assert not torch.allclose(out_motif.aa_logits, out_default.aa_logits)


def _with_random_atom_features(model: Denoiser) -> Denoiser:
    with torch.no_grad():
        model.edge_embedder.atom_geo.weight.normal_(0.0, 0.1)  # zero at init; randomise to test it
    return model


@pytest.mark.parametrize("attention", ["sparse", "dense"])
def test_atom_distance_edge_features_keep_se3_invariance(attention):
    model = _with_random_atom_features(tiny_model(attention=attention, edge_atom_distances=True))
    _check_equivariant(model, random_input(), atol=2e-5)
    model64 = _with_random_atom_features(tiny_model(dtype=torch.float64, edge_atom_distances=True))
    _check_equivariant(model64, random_input(dtype=torch.float64), atol=1e-12)


def test_atom_distance_features_start_as_a_no_op_for_warm_starts():
    """Loading weights trained without the feature reproduces the old model exactly."""
    old = tiny_model(seed=3)
    new = tiny_model(seed=4, edge_atom_distances=True)
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert missing == ["edge_embedder.atom_geo.weight"] and unexpected == []
    inp = random_input()
    with torch.no_grad():
        torch.testing.assert_close(new(inp).aa_logits, old(inp).aa_logits, atol=0, rtol=0)
        _with_random_atom_features(new)
        assert (new(inp).aa_logits - old(inp).aa_logits).abs().max() > 1e-3  # and it is really used


def test_atom_pair_distances_match_backbone_atoms_built_from_frames():
    from multiflow.geometry.backbone import frames_to_backbone, ideal_cb
    from multiflow.models.embedders import atom_pair_distances, local_backbone_nm
    from multiflow.models.graph import knn_graph

    inp = random_input(batch=1, length=10, dtype=torch.float64)
    rots, trans = inp.frames.rots, inp.frames.trans  # nm
    graph = knn_graph(trans, inp.residue_mask, k=4, seq_window=1)
    got = atom_pair_distances(rots, trans, graph, local_backbone_nm().double())  # [1, 10, K, 16]
    bb = frames_to_backbone(Rigid(rots, trans * 10.0))  # Å, [1, 10, 4, 3] N CA C O
    atoms = torch.stack([bb[..., 0, :], bb[..., 1, :], bb[..., 2, :], ideal_cb(bb[..., 0, :], bb[..., 1, :], bb[..., 2, :])], dim=-2)
    for i in range(10):
        for k, j in enumerate(graph.idx[0, i].tolist()):
            want = torch.cdist(atoms[0, i], atoms[0, j]).flatten() / 10.0  # nm, (atom of i, atom of j)
            want = torch.sqrt(want**2 + 1e-8)  # safe_norm's epsilon (gives self-edges a finite gradient)
            torch.testing.assert_close(got[0, i, k], want, atol=1e-7, rtol=0)  # local atoms are float32


def test_neighbour_messages_start_as_a_no_op_for_warm_starts():
    """Loading weights trained without messages reproduces the old model exactly; then they matter."""
    old = tiny_model(seed=3, node_messages=False)
    new = Denoiser(dataclasses.replace(old.cfg, node_messages=True)).eval()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert unexpected == [] and missing and all(".messages." in name for name in missing)
    inp = random_input()
    with torch.no_grad():
        torch.testing.assert_close(new(inp).aa_logits, old(inp).aa_logits, atol=0, rtol=0)
        torch.testing.assert_close(new(inp).trans, old(inp).trans, atol=0, rtol=0)
        for block in new.blocks:
            block.messages.out.weight.normal_(0.0, 0.1)
        assert (new(inp).aa_logits - old(inp).aa_logits).abs().max() > 1e-3


def test_neighbour_messages_average_over_valid_edges_only():
    from multiflow.models.graph import knn_graph
    from multiflow.models.layers import NeighbourMessages

    torch.manual_seed(0)
    layer = NeighbourMessages(c_s=8, c_z=4, hidden=6)
    torch.nn.init.normal_(layer.out.weight)
    inp = random_input(batch=1, length=9)
    mask = inp.residue_mask.clone()
    mask[0, -3:] = False
    graph = knn_graph(inp.frames.trans, mask, k=3, seq_window=1)
    s, z = torch.randn(1, 9, 8), torch.randn(1, 9, graph.num_neighbours, 4)
    got = layer(s, z, graph, mask)
    # by hand for residue 0: MLP of each valid edge, plain mean, output projection
    i, h = 0, []
    for k in range(graph.num_neighbours):
        if graph.mask[0, i, k]:
            j = int(graph.idx[0, i, k])
            pre = layer.edge_in(z[0, i, k]) + layer.node_i(s[0, i]) + layer.node_j(s[0, j])
            h.append(torch.relu(layer.hidden(torch.relu(pre))))
    want = s[0, i] + layer.out(torch.stack(h).mean(0))
    torch.testing.assert_close(got[0, i], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[0, -3:], s[0, -3:])  # padding rows pass through unchanged


@pytest.mark.parametrize("attention", ["sparse", "dense"])
def test_bfloat16_autocast_keeps_frames_in_float32(attention):
    """GPU presets train with precision=bf16-mixed. Under autocast the linear layers run in bfloat16,
    but IPA's points and attention and the frame updates run in float32, and every output comes back
    in the parameters' dtype. Over 10 seeds (length 40, this model) the outputs differed from the
    float32 pass by at most 0.013 nm (translations), 0.02 (rotation entries) and 0.009 (logits):
    bfloat16's 8-bit mantissa through the layers. Checked at 0.05 / 0.08 / 0.05."""
    model = tiny_model(attention=attention, edge_atom_distances=True, node_messages=True)
    inp = random_input(batch=2, length=40)
    with torch.no_grad():
        ref = model(inp)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(inp)
    assert {out.trans.dtype, out.rots.dtype, out.aa_logits.dtype, out.confidence.dtype} == {torch.float32}
    torch.testing.assert_close(out.trans, ref.trans, atol=0.05, rtol=0)
    torch.testing.assert_close(out.rots, ref.rots, atol=0.08, rtol=0)
    torch.testing.assert_close(out.aa_logits, ref.aa_logits, atol=0.05, rtol=0)
    eye = torch.eye(3).expand(2, 40, 3, 3)
    torch.testing.assert_close(out.rots @ out.rots.transpose(-1, -2), eye, atol=1e-5, rtol=0)
