#!/usr/bin/env bash
# The main job on the built-in synthetic data: set up .venv if needed, generate the 'demo' dataset, train a
# small ImageNet-initialised model, evaluate it (COCO keypoint AP table), draw predicted skeletons on validation
# images, and predict on one real photograph (scikit-image's 'astronaut'). About 10 minutes on 2 CPU cores from a
# fresh clone (README). Outputs: runs/demo/ (checkpoints, metrics, val_skeletons/grid.png, astronaut/) and
# runs/demo_dataset_preview/ (the data with its annotations).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1
T=.venv/bin/trspose
$T make-dataset --size demo --preview runs/demo_dataset_preview
$T train configs/synthetic_demo.yaml name=demo --overwrite
$T eval runs/demo/checkpoints/last.pt --overlays runs/demo/val_skeletons
# A real photo of a person (shipped with scikit-image, a dev dependency): how far rendered people carry.
.venv/bin/python -c "import cv2, skimage.data; cv2.imwrite('runs/demo/astronaut.png', skimage.data.astronaut()[:, :, ::-1])"
$T predict runs/demo/checkpoints/last.pt runs/demo/astronaut.png --out runs/demo/astronaut
