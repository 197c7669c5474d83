"""Benchmark: training / inference / data-loading throughput of every backbone, to see where time goes.

    HF_HUB_OFFLINE=1 python benchmarks/throughput.py                      # all models, 128x96 and 256x192
    python benchmarks/throughput.py --models resnet10t,resnet50 --sizes 256x192 --iters 10

    python benchmarks/throughput.py --models efficientnet_lite0,resnet10t --sizes 96x64,128x96 --head fpn \
        --batch-size 32 --variants float32,channels_last,bf16,channels_last+bf16 --no-data

For each model (``build_pose_model(backbone=name, num_keypoints=17, input_size=(h, w), head=--head)``, random
weights), input size and variant it measures, on synthetic input tensors:

* ``train``: forward + heatmap MSE loss + backward + Adam step (images/s), peak memory;
* ``infer``: eval mode under ``torch.inference_mode()``, one forward per batch (images/s);
* ``infer_flip``: the same with the flip test (two forwards per batch, as in evaluation).

And, when the synthetic demo dataset can be found or generated, ``data_loading``: crops/s through the
real training pipeline (``configs/synthetic_demo.yaml``, augmentation + heatmap targets) with 0 and 2
loader workers, with no model running, so a reader can tell whether the loader or the model bounds
training speed.

Variants (``--variants``): ``float32``; ``channels_last`` (weights and inputs in NHWC memory format, as
``model.channels_last``); ``bf16`` (bf16 autocast, as ``train.amp``; on a CPU without native bf16 units, no
AVX512-BF16 or AMX, it is recorded as skipped: emulated bf16 was measured ~20x slower there); ``compile``
(``torch.compile`` of the model, compiled during the warm-up iterations, which are not timed; the compile time is
recorded); and combinations joined by ``+``. The default, ``auto``, is bf16 autocast on CUDA and float32 on CPU. Peak memory: CUDA ``torch.cuda.max_memory_allocated``;
CPU the rise of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` before
each measurement; else ``psutil``/``ru_maxrss``, which can only grow) over the resident set before the
measurement (after ``malloc_trim``), over warm-up and timed iterations -- activations, gradients and
optimizer state, not the weights themselves. ``cpu_util`` (process CPU time / wall time while timing) shows
how much of the ``threads`` cores the benchmark actually got on a shared machine.

On CPU, a (model, size) of ``--guard-models`` (default hrnet_w48) whose training iteration, estimated from
two probe iterations at batch 2, takes longer than ``--max-iter-s`` (20 s) is skipped (recorded with the
reason) unless ``--all`` is given; in practice this can only be HRNet-W48 at 256x192 on a 2-core machine. Records go atomically to ``--out`` as ``{"records": [...], "command": ..., "notes": ...}``
and a markdown table is printed. Other users of the machine show up in ``load_avg_1m``; note it when
comparing numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "throughput.json"
NUM_KEYPOINTS = 17


# --------------------------------------------------------------------------------------------- helpers


def load_avg_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(part) for part in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like HxW, e.g. 256x192") from error
    return h, w


class CpuPeakMemory:
    """Peak resident-set rise during a block, in MB."""

    def __init__(self) -> None:
        self.can_reset = self._reset()
        try:
            import psutil  # noqa: F401

            self.psutil = True
        except ImportError:
            self.psutil = False

    @staticmethod
    def _status_kb(field: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:  # "5": reset the peak RSS (Linux >= 4.0)
                handle.write("5")
            return True
        except OSError:
            return False

    def _current_kb(self) -> int:
        if self.psutil:
            import psutil

            return psutil.Process().memory_info().rss // 1024
        rss = self._status_kb("VmRSS")
        return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def _peak_kb(self) -> int:
        if self.can_reset:
            hwm = self._status_kb("VmHWM")
            if hwm is not None:
                return hwm
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux; never decreases

    @staticmethod
    def _trim() -> None:
        """Give freed heap back to the OS, so memory kept from an earlier model does not hide this peak."""
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def start(self) -> None:
        self._trim()
        if self.can_reset:
            self._reset()
            self.base_kb = self._current_kb()
        else:  # without a reset, only a rise above the process's earlier peak shows up
            self.base_kb = max(self._current_kb(), self._peak_kb())

    def stop(self) -> float:
        return max(0.0, (self._peak_kb() - self.base_kb) / 1024.0)

    def method(self) -> str:
        if self.can_reset:
            return "CPU: VmHWM (reset via /proc/self/clear_refs) minus RSS at start"
        return "CPU: ru_maxrss rise over the process's earlier peak (lower bound; 0 for models smaller than an earlier one)"


# ------------------------------------------------------------------------------------------ benchmarks


class Bench:
    def __init__(self, args: argparse.Namespace, command: str) -> None:
        import torch

        from trspose.engine.run_folder import device_name

        self.torch = torch
        self.args = args
        self.command = command
        if args.device == "auto":
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.device_name = device_name(self.device)  # CPU: model, SIMD level (AVX2 / AVX512) and threads
        self.cpu_memory = None if self.cuda else CpuPeakMemory()
        self.records: list[dict] = []

    # --- common ---------------------------------------------------------------------------------------

    def record(
        self, benchmark: str, model: str | None, size, batch_size: int, images_per_s, peak_mb, **extra
    ):
        row = {
            "benchmark": benchmark,
            "model": model,
            "input_size": list(size),
            "batch_size": batch_size,
            "images_per_s": None if images_per_s is None else round(images_per_s, 2),
            "peak_memory_mb": None if peak_mb is None else round(peak_mb, 1),
            "device": self.device_name,
            "torch": self.torch.__version__,
            "threads": self.torch.get_num_threads(),
            "load_avg_1m": load_avg_1m(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": self.command,
            **extra,
        }
        self.records.append(row)
        shown = "skipped" if images_per_s is None else f"{images_per_s:8.2f} img/s"
        variant = extra.get("variant", "")
        print(
            f"  {benchmark:<13} {model or '-':<18} {size[0]}x{size[1]:<4} {variant:<20} {shown}", flush=True
        )
        return row

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def autocast(self, variant: str = "auto"):
        import contextlib

        if self.cuda and (variant == "auto" or "bf16" in variant):
            return self.torch.autocast("cuda", dtype=self.torch.bfloat16)
        if "bf16" in variant.split("+"):
            return self.torch.autocast("cpu", dtype=self.torch.bfloat16)
        return contextlib.nullcontext()

    def memory_start(self) -> None:
        if self.cuda:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda_base = self.torch.cuda.memory_allocated(self.device)
        else:
            self.cpu_memory.start()

    def memory_stop(self) -> float:
        if self.cuda:
            self.sync()
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        return self.cpu_memory.stop()

    def measure(self, step, warmup: int, iters: int) -> dict:
        """Run ``step`` ``warmup`` + ``iters`` times; time the last ``iters``. Peak memory covers all of them
        (the warm-up is where the allocator first grows). ``cpu_util`` is this process's CPU time over wall
        time in the timed part: about ``threads`` when it had the cores to itself, less when other jobs
        took them."""
        self.memory_start()
        warm_start = time.perf_counter()
        for _ in range(warmup):
            step()
        self.sync()
        warmup_s = time.perf_counter() - warm_start  # includes torch.compile's compilation
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        for _ in range(iters):
            step()
        self.sync()
        seconds = (time.perf_counter() - start) / iters
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        return {
            "seconds_per_iter": seconds,
            "peak_mb": self.memory_stop(),
            "cpu_util": round(cpu / (seconds * iters), 2),
            "warmup_s": round(warmup_s, 2),
        }

    # --- models -----------------------------------------------------------------------------------------

    def model_benchmarks(self, name: str, size: tuple[int, int], variant: str = "auto") -> None:
        torch = self.torch
        from trspose.data.codec import heatmap_size_for
        from trspose.data.keypoints import SPECS
        from trspose.engine.trainer import cpu_has_bf16_units
        from trspose.evaluation.inference import predict_heatmaps
        from trspose.methods.losses import heatmap_mse
        from trspose.models import build_pose_model

        args = self.args
        bs = args.batch_size
        h, w = size
        flip_index = SPECS["coco17"].flip_index()
        parts = variant.split("+")
        if "bf16" in parts and not self.cuda and not cpu_has_bf16_units():
            reason = "skipped: this CPU has no native bf16 units (AVX512-BF16 or AMX); emulated bf16 is ~20x slower"
            for benchmark in ("train", "infer", "infer_flip"):
                self.record(benchmark, name, size, bs, None, None, skipped=reason, variant=variant)
            return
        model = build_pose_model(
            backbone=name, num_keypoints=NUM_KEYPOINTS, input_size=(h, w), head=args.head,
            channels_last="channels_last" in parts,
        ).to(self.device)  # fmt: skip
        compiled = "compile" in parts
        network = torch.compile(model) if compiled else model
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(bs, 3, h, w, generator=generator).to(self.device)
        heatmap_shape = (bs, NUM_KEYPOINTS, *heatmap_size_for((h, w)))
        targets = torch.rand(heatmap_shape, generator=generator).to(self.device)
        weight = torch.ones(bs, NUM_KEYPOINTS, device=self.device)
        extra = {
            "params_m": round(params_m, 2),
            "iters": args.iters,
            "warmup": args.warmup,
            "dtype": "bf16 autocast" if (self.cuda and variant == "auto") or "bf16" in parts else "float32",
            "variant": variant,
            "head": args.head,
        }

        def train_step(x=images, t=targets, wt=weight) -> None:
            with self.autocast(variant):
                loss = heatmap_mse(network(x).heatmaps, t, wt)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        # CPU guard: estimate one training iteration at the full batch from the faster of two probe
        # iterations at batch 2 (the first pays one-off costs) before paying for it.
        if not self.cuda and not args.all and name in args.guard_models:
            probe_bs = min(2, bs)
            model.train()
            times = []
            for _ in range(2):
                start = time.perf_counter()
                train_step(images[:probe_bs], targets[:probe_bs], weight[:probe_bs])
                times.append(time.perf_counter() - start)
            estimate = min(times) * bs / probe_bs
            if estimate > args.max_iter_s:
                reason = (
                    f"skipped on CPU: one training iteration at batch {bs} estimated at {estimate:.0f} s "
                    f"(> --max-iter-s {args.max_iter_s:g}); pass --all to run it"
                )
                for benchmark in ("train", "infer", "infer_flip"):
                    self.record(
                        benchmark,
                        name,
                        size,
                        bs,
                        None,
                        None,
                        skipped=reason,
                        estimated_train_iter_s=round(estimate, 1),
                        **extra,
                    )
                return
            extra["estimated_train_iter_s"] = round(estimate, 2)

        model.train()
        result = self.measure(train_step, args.warmup, args.iters)
        self.record(
            "train",
            name,
            size,
            bs,
            bs / result["seconds_per_iter"],
            result["peak_mb"],
            seconds_per_iter=round(result["seconds_per_iter"], 3),
            cpu_util=result["cpu_util"],
            warmup_s=result["warmup_s"],
            **extra,
        )
        optimizer.zero_grad(set_to_none=True)
        optimizer = None  # its state and the gradients no longer count towards inference memory

        model.eval()
        for benchmark, flip in (("infer", None), ("infer_flip", flip_index)):

            def infer_step(flip=flip) -> None:
                with torch.inference_mode(), self.autocast(variant):
                    predict_heatmaps(network, images, flip)

            result = self.measure(infer_step, args.warmup, args.iters)
            self.record(
                benchmark,
                name,
                size,
                bs,
                bs / result["seconds_per_iter"],
                result["peak_mb"],
                seconds_per_iter=round(result["seconds_per_iter"], 3),
                cpu_util=result["cpu_util"],
                warmup_s=result["warmup_s"],
                **extra,
            )

    # --- data loading -------------------------------------------------------------------------------------

    def data_benchmarks(self, sizes: list[tuple[int, int]]) -> str | None:
        """Crops/s of the real training pipeline; returns why it was skipped, or None."""
        torch = self.torch
        try:
            from trspose.config import load_config
            from trspose.data.datasets import collate_pose
            from trspose.data.sources import load_instances
            from trspose.engine import build

            overrides = {"data": {"root": self.args.data_root}} if self.args.data_root else None
            cfg = load_config(REPO / "configs" / "synthetic_demo.yaml", overrides)
            print(
                f"data: resolving dataset {cfg.data.dataset}/{cfg.data.synthetic_size} "
                "(generated on first use, about a minute)",
                flush=True,
            )
            start = time.perf_counter()
            files = build.resolve_data(cfg)
            instances = load_instances(files, build.keypoint_spec(cfg), "train")
            print(
                f"data: {len(instances)} training instances from {files.root} "
                f"({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
        except Exception as error:  # noqa: BLE001 -- any failure here only skips this part
            return f"{type(error).__name__}: {error}"

        bs, batches = self.args.data_batch_size, self.args.data_batches
        for size in sizes:
            try:
                cfg_size = load_config(
                    REPO / "configs" / "synthetic_demo.yaml",
                    {
                        **(overrides or {}),
                        "data": {**((overrides or {}).get("data", {})), "input_size": list(size)},
                    },
                )
                dataset = build.build_dataset(cfg_size, instances, train=True)
            except Exception as error:  # noqa: BLE001
                return f"{type(error).__name__}: {error}"
            # Warm-up in this process (imports, first image reads); forked workers inherit it.
            for index in range(min(len(dataset), 2 * bs)):
                dataset[index]
            for workers in self.args.data_workers:
                loader = torch.utils.data.DataLoader(
                    dataset,
                    batch_size=bs,
                    shuffle=True,
                    num_workers=workers,
                    collate_fn=collate_pose,
                    generator=torch.Generator().manual_seed(0),
                )
                # Timed from iter() (worker start-up included) over all batches: after a slow first batch
                # the workers have batches prefetched, so a rate that starts after it reads too high.
                start = time.perf_counter()
                crops, first = 0, None
                for index, batch in enumerate(loader):
                    crops += batch.images.shape[0]
                    if first is None:
                        first = time.perf_counter() - start
                    if index + 1 >= batches:
                        break
                seconds = time.perf_counter() - start
                del loader
                self.record(
                    "data_loading",
                    None,
                    size,
                    bs,
                    crops / seconds,
                    None,
                    workers=workers,
                    crops=crops,
                    first_batch_s=round(first, 2),
                    dataset_root=str(files.root),
                )
        return None


# ---------------------------------------------------------------------------------------------- output


def markdown_table(records: list[dict]) -> str:
    lines = [
        "| benchmark | model | input | variant | batch | images/s | peak MB | load 1m | note |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in records:
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.1f}"
        mem = "-" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
        note = f"cpu_util {r['cpu_util']}" if r.get("cpu_util") is not None else ""
        if r.get("skipped"):
            note = r["skipped"].split(";")[0]
        elif r["benchmark"] == "data_loading":
            note = f"{r['workers']} workers"
        h, w = r["input_size"]
        lines.append(
            f"| {r['benchmark']} | {r['model'] or '-'} | {h}x{w} | {r.get('variant', '-')} | {r['batch_size']} | {ips} | {mem} "
            f"| {r['load_avg_1m']} | {note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from trspose.io import write_json
    from trspose.models import BACKBONES

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default=",".join(BACKBONES), help="comma-separated backbone names (default: all)"
    )
    parser.add_argument("--sizes", default="128x96,256x192", help="comma-separated HxW input sizes")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--head", default="auto", help="main head: auto, deconv, conv or fpn")
    parser.add_argument(
        "--variants",
        default="auto",
        help="comma-separated: auto, float32, channels_last, bf16 and '+' combinations (e.g. channels_last+bf16)",
    )
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--data-root",
        default=None,
        help="synthetic demo dataset folder (default: the project cache; generated if missing)",
    )
    parser.add_argument("--data-batch-size", type=int, default=32)
    parser.add_argument(
        "--data-batches", type=int, default=10, help="timed loader batches (worker start-up included)"
    )
    parser.add_argument("--data-workers", default="0,2", help="comma-separated loader worker counts")
    parser.add_argument("--no-data", action="store_true", help="skip the data-loading benchmark")
    parser.add_argument(
        "--max-iter-s",
        type=float,
        default=20.0,
        help="CPU: skip a (model, size) whose training iteration is estimated above this",
    )
    parser.add_argument(
        "--guard-models",
        default="hrnet_w48",
        help="CPU: comma-separated models whose training iteration is probed first and skipped "
        "above --max-iter-s (a probe on a busy machine can overestimate a lot, so only the "
        "models that can really take that long are probed)",
    )
    parser.add_argument("--all", action="store_true", help="CPU: run everything, however slow")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in BACKBONES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; valid: {', '.join(BACKBONES)}")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [
        v
        for v in variants
        if v != "auto" and not set(v.split("+")) <= {"float32", "channels_last", "bf16", "compile"}
    ]
    if bad:
        parser.error(
            f"unknown variant(s) {bad}; use auto, float32, channels_last, bf16, compile or '+' combinations"
        )
    args.guard_models = {m.strip() for m in args.guard_models.split(",") if m.strip()}
    args.data_workers = [int(n) for n in args.data_workers.split(",") if n.strip()]
    command = (
        shlex.join([Path(sys.executable).name, *sys.argv])
        if argv is None
        else shlex.join(["throughput.py", *argv])
    )

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench = Bench(args, command)
    wall_start = time.perf_counter()
    print(
        f"device {bench.device_name} ({args.device}), torch {bench.torch.__version__}, "
        f"{bench.torch.get_num_threads()} threads, load {load_avg_1m()}",
        flush=True,
    )

    def save(final: bool) -> None:
        memory = (
            "CUDA: torch.cuda.max_memory_allocated (includes weights)"
            if bench.cuda
            else bench.cpu_memory.method()
        )
        notes = (
            f"Random weights and random input tensors for train/infer (heatmap MSE + Adam lr 1e-3); "
            f"{args.warmup} warm-up + {args.iters} timed iterations; "
            f"variants {', '.join(variants)} (auto: {'bf16 autocast' if bench.cuda else 'float32'}); head {args.head}. infer_flip = two forwards per batch "
            f"(predict_heatmaps with the COCO-17 flip index); its images/s counts each image once. "
            f"peak_memory_mb: {memory}. data_loading: configs/synthetic_demo.yaml training pipeline "
            f"(augmentation + heatmap targets), batch {args.data_batch_size}, {args.data_batches} batches timed from iter() "
            f"(worker start-up included; first_batch_s is the wait for the first one), no model running. "
            f"Machine shared with other jobs: see load_avg_1m. "
            f"wall {time.perf_counter() - wall_start:.0f} s{'' if final else ' (partial run)'}."
        )
        if bench.data_skipped:
            notes += f" data_loading skipped: {bench.data_skipped}"
        write_json({"records": bench.records, "command": command, "notes": notes}, args.out)

    bench.data_skipped = None
    if args.no_data:
        bench.data_skipped = "--no-data"
    else:
        bench.data_skipped = bench.data_benchmarks(sizes)
        if bench.data_skipped:
            print(f"data loading skipped: {bench.data_skipped}", flush=True)
    save(final=False)

    for size in sizes:
        for name in models:
            print(f"{name} {size[0]}x{size[1]}", flush=True)
            for variant in variants:
                bench.model_benchmarks(name, size, variant)
                save(final=False)

    save(final=True)
    print()
    print(markdown_table(bench.records))
    print(f"\nwall {time.perf_counter() - wall_start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
