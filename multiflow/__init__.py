"""multiflow: joint sequence-structure protein design by multimodal flow matching.

Tensor conventions used everywhere in the package (dimension letters):
    B batch, N residues, K neighbours, A atoms per residue (37 or 4), V vocabulary.
Coordinates are in Ångström unless a name says otherwise (``*_nm``).
Time runs from t=0 (noise) to t=1 (data).
"""

__version__ = "0.1.0"
