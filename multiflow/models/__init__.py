"""The denoiser: noisy frames, tokens and per-modality times -> clean frames and aa logits.

    from multiflow.models import Denoiser, DenoiserConfig, DenoiserInput
    model = Denoiser(DenoiserConfig.preset("cpu_small"))
    out = model(DenoiserInput(frames=..., aatype=..., t_trans=..., ...))
"""

from multiflow.models.config import DenoiserConfig
from multiflow.models.denoiser import Denoiser, DenoiserInput, DenoiserOutput, build_denoiser

__all__ = ["Denoiser", "DenoiserConfig", "DenoiserInput", "DenoiserOutput", "build_denoiser"]
