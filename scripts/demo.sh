#!/usr/bin/env bash
# The main job on the built-in synthetic data: set up .venv if needed, generate the 'demo' dataset, train a
# small model, evaluate it (COCO keypoint AP table) and draw predicted skeletons on validation images.
# About 13 minutes on 2 CPU cores from a fresh clone (README). Outputs: runs/demo/ (checkpoints, metrics,
# val_skeletons/grid.png) and runs/demo_dataset_preview/ (the data with its annotations).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1
T=.venv/bin/trspose
$T make-dataset --size demo --preview runs/demo_dataset_preview
$T train configs/synthetic_demo.yaml name=demo --overwrite
$T eval runs/demo/checkpoints/last.pt --overlays runs/demo/val_skeletons
