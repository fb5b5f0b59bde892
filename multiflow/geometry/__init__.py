"""Geometry kernels: SO(3) maps and sampling, rigid frames, backbone atoms, superposition."""

from multiflow.geometry import so3
from multiflow.geometry.backbone import backbone_to_atom37, frames_to_backbone, ideal_cb, ideal_local_backbone
from multiflow.geometry.rigid import Rigid
from multiflow.geometry.so3 import IGSO3, igso3_angle_density
from multiflow.geometry.superposition import aligned_rmsd, kabsch, superimpose

__all__ = [
    "IGSO3",
    "Rigid",
    "aligned_rmsd",
    "backbone_to_atom37",
    "frames_to_backbone",
    "ideal_cb",
    "ideal_local_backbone",
    "igso3_angle_density",
    "kabsch",
    "so3",
    "superimpose",
]
