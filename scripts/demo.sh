#!/usr/bin/env bash
# The main job on the built-in synthetic data: set up .venv if needed, generate the 'demo' dataset, train a
# small model, evaluate it (COCO keypoint AP table) and draw predicted skeletons on validation images.
# About 10-15 minutes on 2 CPU cores. Outputs: runs/demo/ (checkpoints, metrics, predictions/grid.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1
T=.venv/bin/trspose
$T make-dataset --size demo --preview runs/demo_dataset_preview
$T train configs/synthetic_demo.yaml name=demo --overwrite
$T predict runs/demo/checkpoints/last.pt "$($T dataset-path --size demo)/images/val" --max-images 12 --out runs/demo/predictions
echo "skeletons on validation images: runs/demo/predictions/grid.png"
