"""Invariant point attention: SE(3) invariance and agreement of its three kernels."""

from __future__ import annotations

import torch

from multiflow.models.graph import dense_graph, knn_graph
from multiflow.models.ipa import InvariantPointAttention
from tests.models.helpers import random_rotations

B, N, C_S, C_Z = 2, 11, 16, 8


def _setup(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    ipa = InvariantPointAttention(C_S, C_Z, heads=3, head_dim=4, qk_points=2, v_points=3).to(dtype)
    s = torch.randn(B, N, C_S, dtype=dtype)
    rots = random_rotations((B, N), dtype=dtype)
    trans = torch.randn(B, N, 3, dtype=dtype)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 8:] = False
    z_dense = torch.randn(B, N, N, C_Z, dtype=dtype)
    return ipa, s, rots, trans, mask, z_dense


def _edge_z(z_dense, graph):
    """z of a dense pair tensor read along the graph's edges -> [B, N, K, C_z]."""
    idx = graph.idx[..., None].expand(*graph.idx.shape, z_dense.shape[-1])
    return torch.gather(z_dense, 2, idx)


def test_ipa_is_invariant_to_global_rigid_motion_float64():
    ipa, s, rots, trans, mask, z = _setup()
    graph = dense_graph(mask)
    rot = random_rotations((), dtype=torch.float64)
    out = ipa(s, z, rots, trans, graph)
    out_moved = ipa(s, z, rot @ rots, trans @ rot.T + torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64), graph)
    # exact in real arithmetic; float64 round-off of ~1e-15 relative stays far below 1e-9
    torch.testing.assert_close(out_moved[mask], out[mask], atol=1e-9, rtol=0)


def test_dense_masked_dense_and_gather_kernels_agree():
    ipa, s, rots, trans, mask, z_dense = _setup()
    dense = ipa(s, z_dense, rots, trans, dense_graph(mask))
    # K = N: the sparse graph lists every residue (in distance order, not arange)
    full = knn_graph(trans, mask, k=N, seq_window=0)
    assert full.num_neighbours == N and not full.dense
    z_full = _edge_z(z_dense, full)
    masked_dense = ipa(s, z_full, rots, trans, full)
    ipa.masked_dense_max_n = 0  # force the gather kernel
    gathered = ipa(s, z_full, rots, trans, full)
    torch.testing.assert_close(masked_dense[mask], dense[mask], atol=1e-10, rtol=0)
    torch.testing.assert_close(gathered[mask], dense[mask], atol=1e-10, rtol=0)
    # a genuinely sparse graph: the two sparse kernels still agree
    small = knn_graph(trans, mask, k=2, seq_window=1)
    z_small = _edge_z(z_dense, small)
    ipa.masked_dense_max_n = 2048
    a = ipa(s, z_small, rots, trans, small)
    ipa.masked_dense_max_n = 0
    b = ipa(s, z_small, rots, trans, small)
    torch.testing.assert_close(a[mask], b[mask], atol=1e-10, rtol=0)
    assert not torch.allclose(a[mask], dense[mask])  # and it is not the dense function

