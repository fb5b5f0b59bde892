"""Neighbour graphs: k-NN ∪ sequence window, padding never chosen, rigid-motion invariant."""

from __future__ import annotations

import pytest
import torch

from multiflow.models.graph import dense_graph, gather_nodes, knn_graph
from tests.models.helpers import random_rotations


def _neighbour_sets(graph) -> list[list[set[int]]]:
    return [
        [set(graph.idx[b, i][graph.mask[b, i]].tolist()) for i in range(graph.idx.shape[1])]
        for b in range(graph.idx.shape[0])
    ]


def test_knn_graph_is_window_union_nearest():
    torch.manual_seed(0)
    B, N, k, s = 2, 15, 3, 1
    trans = torch.randn(B, N, 3)
    mask = torch.ones(B, N, dtype=torch.bool)
    graph = knn_graph(trans, mask, k, s)
    assert graph.idx.shape == (B, N, k + 2 * s + 1) and not graph.dense
    dist = torch.cdist(trans, trans)
    for b, rows in enumerate(_neighbour_sets(graph)):
        for i, got in enumerate(rows):
            window = {j for j in range(N) if abs(i - j) <= s}
            # K is fixed: rows with a short window (chain ends) take more spatial neighbours
            others = [j for j in dist[b, i].argsort().tolist() if j not in window][: k + 2 * s + 1 - len(window)]
            assert got == window | set(others)


def test_knn_graph_never_selects_padding_and_respects_chains():
    torch.manual_seed(0)
    N = 10
    trans = torch.randn(1, N, 3)
    mask = torch.ones(1, N, dtype=torch.bool)
    mask[0, 7:] = False
    chain = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 1, 1]])
    graph = knn_graph(trans, mask, k=0, seq_window=2, chain_index=chain)
    for i, got in enumerate(_neighbour_sets(graph)[0][:7]):
        window = {j for j in range(7) if abs(i - j) <= 2 and chain[0, j] == chain[0, i]}
        assert window <= got <= set(range(7))  # window kept, free slots filled by real residues only
        assert len(got) == 5  # K = k + 2s + 1 and there are 7 real residues
    assert not graph.mask[0, 7:].any()  # padding rows have no edges


def test_knn_graph_invariant_to_rigid_motion_and_uses_extra_structure():
    torch.manual_seed(0)
    trans = torch.randn(1, 30, 3, dtype=torch.float64)
    mask = torch.ones(1, 30, dtype=torch.bool)
    rot = random_rotations((), dtype=torch.float64)
    g1 = knn_graph(trans, mask, 5, 2)
    g2 = knn_graph(trans @ rot.T + 3.0, mask, 5, 2)
    assert _neighbour_sets(g1) == _neighbour_sets(g2)
    # an extra structure in which residue 0 sits on residue 20 makes them neighbours
    extra = trans.clone()
    extra[0, 0] = extra[0, 20]
    g3 = knn_graph(trans, mask, 5, 2, extra_trans=extra)
    assert 20 in _neighbour_sets(g3)[0][0]


def test_knn_graph_rejects_negative_sizes():
    with pytest.raises(ValueError, match="k and seq_window"):
        knn_graph(torch.zeros(1, 3, 3), torch.ones(1, 3, dtype=torch.bool), -1, 1)


def test_gather_nodes_matches_indexing_on_sparse_and_dense_graphs():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 4, 3)
    mask = torch.ones(2, 9, dtype=torch.bool)
    for graph in (knn_graph(torch.randn(2, 9, 3), mask, 2, 1), dense_graph(mask)):
        got = gather_nodes(x, graph)
        for b in range(2):
            torch.testing.assert_close(got[b], x[b][graph.idx[b]])
