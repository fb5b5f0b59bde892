#!/usr/bin/env bash
# The main job for a newcomer: set up .venv, then co-design proteins with the bundled model
# and write a run folder with PDB/FASTA files, designs.csv and a 3D viewer (viewer.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
OUT=${1:-outputs/demo}
multiflow sample --lengths 70,100 --num_samples 2 --num_steps 100 --seed 7 --out_folder "$OUT" --overwrite
echo
echo "Designs written to $OUT; open $OUT/viewer.html in a browser (works offline)."
