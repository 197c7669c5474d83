#!/usr/bin/env bash
# A keypoint layout other than COCO-17, end to end (README, "Your own keypoints"): the 'demo' synthetic people with
# MPII's 16 keypoints, trained like the demo, evaluated with AP (MPII's OKS sigmas) and PCKh@0.5, run on a video
# and exported to ONNX. About 10 minutes on 2 CPU cores once the environment exists. Outputs under runs/mpii16/;
# the scores also go to benchmarks/results/mpii16_example.json with the command and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1
T=.venv/bin/trspose
start=$(date +%s)
$T make-dataset --size demo --keypoints mpii16
$T train configs/synthetic_demo.yaml data.keypoints=mpii16 name=mpii16 --overwrite
$T eval runs/mpii16/checkpoints/last.pt --per-keypoint runs/mpii16/per_keypoint | tee runs/mpii16/eval.txt
# a clip of 24 validation images, 4 frames each, to run the video path on
root=$($T dataset-path --size demo --keypoints mpii16)
.venv/bin/python - "$root" <<'EOF'
import sys, cv2, pathlib
frames = sorted(pathlib.Path(sys.argv[1], "images", "val").glob("*.jpg"))[:24]
first = cv2.imread(str(frames[0]))
writer = cv2.VideoWriter("runs/mpii16/clip.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 8, first.shape[1::-1])
for frame in frames:
    for _ in range(4):
        writer.write(cv2.imread(str(frame)))
writer.release()
EOF
$T predict runs/mpii16/checkpoints/last.pt runs/mpii16/clip.mp4 --out runs/mpii16/video
$T export runs/mpii16/checkpoints/last.pt --out runs/mpii16/onnx
$T eval runs/mpii16/onnx/model.onnx | tee runs/mpii16/eval_onnx.txt
.venv/bin/python - "$start" <<'EOF'
import json, subprocess, sys, time
rows = {}
for name in ("eval", "eval_onnx"):
    lines = open(f"runs/mpii16/{name}.txt").read().splitlines()
    at = max(i for i, line in enumerate(lines) if line.startswith("| AP |"))  # the score table, then its values
    header, values = ([c.strip() for c in lines[i].strip().strip("|").split("|")] for i in (at, at + 2))
    rows[name] = dict(zip(header, map(float, values)))
record = {
    "command": "bash scripts/mpii16_example.sh",
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "date": time.strftime("%Y-%m-%d"),
    "device": json.load(open("runs/mpii16/environment.json"))["device"],
    "wall_s": round(time.time() - float(sys.argv[1])),
    "checkpoint": rows["eval"],
    "onnx": rows["eval_onnx"],
    "csv_header": open("runs/mpii16/video/clip.csv").readlines()[1].strip(),
}
json.dump(record, open("benchmarks/results/mpii16_example.json", "w"), indent=1)
print(json.dumps(record, indent=1))
EOF
