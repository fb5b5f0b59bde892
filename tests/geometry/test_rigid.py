"""Rigid: group laws, tensor-like behaviour, validation, and frames of real backbones."""

from __future__ import annotations

import pytest
import torch

from multiflow.geometry import Rigid, frames_to_backbone, so3


def _random_rigid(*shape: int, dtype=torch.float64) -> Rigid:
    return Rigid(so3.uniform(shape, dtype=dtype), torch.randn(*shape, 3, dtype=dtype) * 5)


def _assert_rigid_close(a: Rigid, b: Rigid, atol: float = 1e-10) -> None:
    torch.testing.assert_close(a.rots, b.rots, atol=atol, rtol=0)
    torch.testing.assert_close(a.trans, b.trans, atol=atol, rtol=0)


def test_compose_is_associative_and_matches_apply():
    a, b, c = _random_rigid(5), _random_rigid(5), _random_rigid(5)
    _assert_rigid_close((a @ b) @ c, a @ (b @ c))
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close((a @ b).apply(x), a.apply(b.apply(x)))


def test_invert_compose_is_identity():
    a = _random_rigid(3, 4)
    ident = Rigid.identity((3, 4), dtype=torch.float64)
    _assert_rigid_close(a.invert() @ a, ident)
    _assert_rigid_close(a @ a.invert(), ident)
    _assert_rigid_close(a.invert().invert(), a)


def test_apply_invert_apply_round_trip_and_broadcast():
    a = _random_rigid(6)
    x = torch.randn(6, 10, 3, dtype=torch.float64)  # points per frame
    local = a[:, None].invert_apply(x)
    torch.testing.assert_close(a[:, None].apply(local), x)
    torch.testing.assert_close(a[:, None].invert().apply(x), local)
    # distances are preserved
    torch.testing.assert_close(local.diff(dim=1).norm(dim=-1), x.diff(dim=1).norm(dim=-1))


def test_indexing_and_shape_behaviour():
    a = _random_rigid(2, 7)
    assert a.shape == (2, 7) and len(a) == 2
    assert a[0].shape == (7,)
    assert a[:, 2:5].shape == (2, 3)
    assert a[..., -1].shape == (2,)
    assert a[:, None].shape == (2, 1, 7)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, :3] = True
    assert a[mask].shape == (3,)
    torch.testing.assert_close(a[1, 3].trans, a.trans[1, 3])
    torch.testing.assert_close(a[1, 3].rots, a.rots[1, 3])
    assert a.unsqueeze(-1).shape == (2, 7, 1)
    assert a.reshape(14).shape == (14,) and a.reshape(7, 2).shape == (7, 2)
    assert Rigid.cat([a, a], dim=-1).shape == (2, 14)
    assert Rigid.stack([a, a, a], dim=-1).shape == (2, 7, 3)
    assert a.to(torch.float32).dtype == torch.float32
    torch.testing.assert_close(a.scale_translation(0.1).trans, a.trans * 0.1)


def test_identity_and_detach():
    ident = Rigid.identity((3,))
    assert ident.dtype == torch.float32 and ident.shape == (3,)
    x = torch.randn(3, 3)
    torch.testing.assert_close(ident.apply(x), x)
    trans = torch.randn(3, 3, requires_grad=True)
    assert not Rigid(ident.rots, trans).detach().trans.requires_grad


def test_frozen_and_constructor_validation():
    a = _random_rigid(4)
    with pytest.raises(AttributeError):
        a.trans = torch.zeros(4, 3)  # type: ignore[misc]
    with pytest.raises(ValueError, match="leading shapes"):
        Rigid(torch.eye(3).expand(4, 3, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        Rigid(torch.zeros(4, 3, 4), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        Rigid(torch.eye(3).expand(4, 3, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="dtype"):
        Rigid(torch.eye(3, dtype=torch.float64), torch.zeros(3))
    with pytest.raises(TypeError):
        Rigid([[1, 0, 0]], torch.zeros(3))  # type: ignore[arg-type]


def test_tensor_7_round_trip():
    a = _random_rigid(3, 2)
    t7 = a.to_tensor_7()
    assert t7.shape == (3, 2, 7)
    _assert_rigid_close(Rigid.from_tensor_7(t7), a, atol=1e-12)


def test_from_backbone_frame_convention():
    n, ca, c = torch.tensor([[-0.5, 1.4, 0.1], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0]], dtype=torch.float64)
    move = _random_rigid()
    f = Rigid.from_backbone(move.apply(n), move.apply(ca), move.apply(c))
    local_n = f.invert_apply(move.apply(n))
    local_c = f.invert_apply(move.apply(c))
    assert abs(float(local_c[1])) < 1e-12 and abs(float(local_c[2])) < 1e-12 and float(local_c[0]) > 0
    assert abs(float(local_n[2])) < 1e-12 and float(local_n[1]) > 0
    torch.testing.assert_close(torch.linalg.det(f.rots), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(f.trans, move.trans)


def test_real_backbone_round_trip(real_chains):
    for ch in real_chains:
        bb = ch.bb
        frames = Rigid.from_backbone(bb[:, 0], bb[:, 1], bb[:, 2])
        atoms = frames_to_backbone(frames)
        err = (atoms - bb).norm(dim=-1)  # [N, 4]
        assert float(err[:, 1].max()) < 1e-9  # CA is the origin
        assert float(err[:, 2].max()) < 0.06  # C: only the CA-C bond length differs from ideal
        # N: ideal N-CA bond and N-CA-C angle; crystal angles scatter by a few degrees
        assert float(err[:, 0].mean()) < 0.1 and float(err[:, 0].max()) < 0.5, ch.name
        o_err = err[ch.next_is_bonded, 3]
        assert float(o_err.median()) < 0.15 and float(o_err.mean()) < 0.2, ch.name
        # frames -> atoms -> frames is exact
        again = Rigid.from_backbone(atoms[:, 0], atoms[:, 1], atoms[:, 2])
        _assert_rigid_close(again, frames, atol=1e-10)
