"""The denoiser seen as a flow model: ``(state, t, **extras) -> Prediction``.

One adapter serves training (:class:`~multiflow.flows.interpolant.NoisyBatch` in) and sampling
(:class:`~multiflow.sampling.solver.EulerSolver` calls it every step), so the model sees the
same inputs in both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from multiflow.flows.interpolant import NoisyBatch
from multiflow.geometry.rigid import Rigid
from multiflow.models.denoiser import Denoiser, DenoiserInput, DenoiserOutput
from multiflow.sampling.solver import Conditioning, FlowState, Prediction


class DenoiserFlowModel(nn.Module):
    """Wraps a :class:`Denoiser`; extras carry residue_index, chain_index, res_mask, self_condition."""

    def __init__(self, denoiser: Denoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(
        self,
        state: FlowState,
        t: dict[str, Tensor],
        *,
        res_mask: Tensor,
        residue_index: Tensor,
        chain_index: Tensor | None = None,
        self_condition: Prediction | None = None,
        conditioning: Conditioning | None = None,
        fixed_structure: Tensor | None = None,
        fixed_sequence: Tensor | None = None,
        **_: Any,
    ) -> Prediction:
        if conditioning is not None:  # at sampling time the solver's conditioning says what is given
            fixed_structure, fixed_sequence = conditioning.fixed_structure, conditioning.fixed_sequence
        out = self.denoise(state, t, res_mask, residue_index, chain_index, self_condition,
                           fixed_structure=fixed_structure, fixed_sequence=fixed_sequence)
        return Prediction(trans_1=out.trans, rots_1=out.rots, logits=out.aa_logits, confidence=out.confidence)

    def denoise(
        self,
        state: FlowState,
        t: dict[str, Tensor],
        res_mask: Tensor,
        residue_index: Tensor,
        chain_index: Tensor | None = None,
        self_condition: Prediction | None = None,
        fixed_structure: Tensor | None = None,
        fixed_sequence: Tensor | None = None,
    ) -> DenoiserOutput:
        sc_trans = sc_aa = None
        if self_condition is not None:
            sc_trans = self_condition.trans_1.detach()
            sc_aa = torch.softmax(self_condition.logits[..., :20].detach().float(), dim=-1)
        inp = DenoiserInput(
            frames=Rigid(rots=state.rots, trans=state.trans),
            aatype=state.aatype,
            t_trans=t["trans"],
            t_rots=t["rots"],
            t_aa=t["aa"],
            residue_index=residue_index,
            residue_mask=res_mask,
            chain_index=chain_index,
            self_cond_trans=sc_trans,
            self_cond_aa=sc_aa,
            fixed_structure=fixed_structure,
            fixed_sequence=fixed_sequence,
        )
        return self.denoiser(inp)


def noisy_batch_inputs(noisy: NoisyBatch) -> tuple[FlowState, dict[str, Tensor], dict[str, Tensor]]:
    """(state, times, extras) of a training batch, in the form the solver passes at sampling time."""
    state = FlowState(trans=noisy.trans_t, rots=noisy.rots_t, aatype=noisy.aatype_t)
    t = {"trans": noisy.t_trans, "rots": noisy.t_rots, "aa": noisy.t_aa}
    extras = {
        "res_mask": noisy.res_mask, "residue_index": noisy.residue_index, "chain_index": noisy.chain_index,
        "fixed_structure": noisy.fixed_structure, "fixed_sequence": noisy.fixed_sequence,
    }
    return state, t, extras
