"""The run folder: resolved config, environment record, metrics (JSONL + TensorBoard), checkpoints.

Layout::

    runs/<name>/config.yaml          the resolved config
    runs/<name>/environment.json     git revision, package versions, device, world size
    runs/<name>/metrics.jsonl        one JSON object per logged step / evaluation
    runs/<name>/tensorboard/         the same scalars for TensorBoard
    runs/<name>/checkpoints/{last,best}.pt
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch
import yaml

from trspose.config import (
    ExperimentConfig,
    changed_keys,
    config_from_dict,
    config_to_dict,
    dotted_items,
    dump_yaml,
)
from trspose.errors import TrainingError, TrsposeError
from trspose.io import append_line, finite_or_none, write_json, write_text

log = logging.getLogger(__name__)


def prepare_run_folder(cfg: ExperimentConfig, *, resume: bool, overwrite: bool) -> Path:
    """Create ``output_dir/name``; an existing run is never overwritten unless asked."""
    run_dir = Path(cfg.output_dir) / cfg.name
    last = run_dir / "checkpoints" / "last.pt"
    if resume:
        if not last.is_file():
            again = (
                "start it again with --overwrite" if run_dir.exists() else "start the run without --resume"
            )
            raise TrainingError(
                f"cannot resume: '{last}' does not exist (no checkpoint was written); {again}"
            )
        check_resumed_config(cfg, run_dir / "config.yaml")
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite and not last.is_file():
            raise TrainingError(
                f"run folder '{run_dir}' already exists and holds no checkpoint to resume (the run stopped before "
                "its first one); pass --overwrite to start it again, or choose another name=..."
            )
        if not overwrite:
            raise TrainingError(
                f"run folder '{run_dir}' already exists; pass --resume to continue it, --overwrite to replace it, "
                "or choose another name=..."
            )
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    return run_dir


# Keys a resumed run may change: where the run lives and how fast, not what it computes.
RESUME_MAY_CHANGE = (
    "name", "output_dir", "data.workers", "eval.batch_size", "eval.pseudo_label_people", "train.keep_checkpoints",
)  # fmt: skip


def check_resumed_config(cfg: ExperimentConfig, saved: Path) -> None:
    """A resumed run must compute what the interrupted one did: refuse a config that differs from the run's
    ``config.yaml`` (a changed budget would move the LR milestones mid-run), naming the keys that differ."""
    if not saved.is_file():
        return  # a run folder from before config.yaml was written; nothing to compare
    try:  # as a record is read: a run of an older version, with keys since renamed, resumes without notes
        before = config_to_dict(config_from_dict(yaml.safe_load(saved.read_text()) or {}))
    except (TrsposeError, OSError, yaml.YAMLError, AttributeError) as error:
        raise TrainingError(
            f"cannot resume: '{saved}' is not a config this version reads ({error})"
        ) from None
    now = config_to_dict(cfg)
    changed = changed_keys(before, now, ignore=RESUME_MAY_CHANGE)
    before, now = dotted_items(before), dotted_items(now)
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise TrainingError(
            f"cannot resume '{saved.parent}' with a different config ({shown}{more}); resume with the run's own "
            f"config: trspose train {saved} --resume"
        )


def git_revision(cwd: Path = Path(__file__).parent) -> str:
    """HEAD of the checkout holding ``cwd`` (this package's), with '+dirty' when the checkout differs from it
    outside ``benchmarks/results``: a benchmark that appends its records there between rows does not change the
    code the next row runs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=cwd
        )
        if head.returncode:
            return "unknown"
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)benchmarks/results"],
            capture_output=True, text=True, timeout=5, cwd=cwd,
        )  # fmt: skip
        return head.stdout.strip() + ("+dirty" if changed.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_record(device: torch.device, world_size: int) -> dict:
    versions: dict[str, str | None] = {}
    for package in (
        "trspose",
        "torch",
        "torchvision",
        "timm",
        "numpy",
        "opencv-python-headless",
        "pycocotools",
        "anny",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "git_revision": git_revision(),
        "versions": versions,
        "python": platform.python_version(),
        "device": device_name(device),
        "world_size": world_size,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # two "AMD EPYC" machines of this project trained the same config ~3x apart in speed: record the SIMD level
    # torch uses (AVX2 / AVX512) so a wall time can be traced to its machine
    return (
        f"cpu ({cpu_model()}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
    )


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_run_metadata(
    run_dir: Path, config: dict, device: torch.device, world_size: int, precision: str = "float32"
) -> None:
    """``config.yaml`` (the resolved config, as ``config_to_dict`` gives it) and ``environment.json``."""
    write_text(dump_yaml(config), run_dir / "config.yaml")
    write_json(
        {**environment_record(device, world_size), "precision": precision},
        run_dir / "environment.json",
        indent=2,
    )


def note_resumed_environment(
    run_dir: Path, step: int, device: torch.device, world_size: int, precision: str = "float32"
) -> None:
    """Add this sitting's environment (revision, versions, device, precision) to the run's environment.json, under
    ``resumed``: the top-level fields stay those of the run's start, each resume appends ``{"step": ..., ...}``.
    A sitting that trains in another precision than the start (``train.amp`` on a machine with or without bf16
    units) is said in a warning: the run goes on, and the record says from which step."""
    path = run_dir / "environment.json"
    now = {**environment_record(device, world_size), "precision": precision}
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        # missing or unreadable: the start's environment is lost; this sitting's stands in for it, marked so
        record = {**now, "unknown_start": True}
    before = (record.get("resumed") or [record])[-1].get("precision", "float32")
    if before != precision:
        log.warning("resuming at step %d in %s; the previous sitting trained in %s (train.amp on %s)",
                    step, precision, before, now["device"])  # fmt: skip
    record.setdefault("resumed", []).append({"step": step, **now})
    write_json(record, path)


class MetricsLogger:
    """Appends scalars to metrics.jsonl and TensorBoard (rank 0 only; other ranks get a no-op logger)."""

    def __init__(self, run_dir: Path | None):
        self.path = run_dir / "metrics.jsonl" if run_dir else None
        self.writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, step: int, values: dict[str, float], kind: str = "train") -> None:
        if self.path is None:
            return
        clean = finite_or_none(values)
        record = {"step": step, "kind": kind, "time": round(time.time(), 3), **clean}
        append_line(json.dumps(record), self.path)
        for key, value in clean.items():
            if value is not None and self.writer is not None:
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
