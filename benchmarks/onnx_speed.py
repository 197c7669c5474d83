"""Benchmark: CPU inference speed of an exported ONNX model (onnxruntime) beside the same checkpoint in PyTorch.

    python benchmarks/onnx_speed.py runs/demo/checkpoints/last.pt      # after scripts/demo.sh

Exports the checkpoint (``trspose export``) into a temporary folder, then times one forward pass of a batch of
random normalised crops at the model's input size, in PyTorch (eval mode, ``torch.inference_mode``, the
checkpoint's memory format) and in onnxruntime (CPU provider, default threads), alternating the two so load on
the machine hits both alike. Writes ``benchmarks/results/onnx_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per runtime (after one warm-up)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "onnx_speed.json"))
    args = parser.parse_args()

    import torch

    from trspose.apps.export import export_onnx
    from trspose.apps.predictor import OnnxPoseModel, load_model
    from trspose.engine.run_folder import device_name
    from trspose.io import write_json

    cfg, model = load_model(args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        runtime = OnnxPoseModel(export_onnx(args.checkpoint, folder))
        height, width = cfg.data.input_size
        records = []
        for batch in args.batch_sizes:
            images = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
            seconds = {"pytorch": [], "onnxruntime": []}
            with torch.inference_mode():
                for network in (model, runtime):
                    network(images)  # warm-up
                for _ in range(args.rounds):
                    for name, network in (("pytorch", model), ("onnxruntime", runtime)):
                        start = time.perf_counter()
                        network(images)
                        seconds[name].append(time.perf_counter() - start)
            best = {name: min(values) for name, values in seconds.items()}
            records.append({
                "batch_size": batch,
                "pytorch_images_per_s": round(batch / best["pytorch"], 1),
                "onnxruntime_images_per_s": round(batch / best["onnxruntime"], 1),
                "onnx_over_pytorch": round(best["pytorch"] / best["onnxruntime"], 2),
            })  # fmt: skip
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    write_json({
        "command": command, "device": device_name(torch.device("cpu")), "torch": torch.__version__,
        "backbone": cfg.model.backbone, "input_size": list(cfg.data.input_size),
        "channels_last": cfg.model.channels_last, "timing": f"best of {args.rounds} rounds, one forward pass",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "records": records,
    }, args.out)  # fmt: skip
    print("| batch | PyTorch img/s | onnxruntime img/s | onnxruntime / PyTorch |\n|---|---:|---:|---:|")
    for r in records:
        print(f"| {r['batch_size']} | {r['pytorch_images_per_s']} | {r['onnxruntime_images_per_s']} | "
              f"{r['onnx_over_pytorch']} |")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
