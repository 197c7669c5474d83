"""Shared by the results-table benchmarks: run one training job, turn its run folder into a record.

Each record: method, ablation, num_labeled, labeled_fraction, seed, steps, AP/AP50/AP75/AR (percent),
wall_s, device, config and the exact command, appended to a JSON list that is rewritten atomically
after every run, so an interrupted table keeps what it has and a rerun skips what is done.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def save_records(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1) + "\n")
    os.replace(tmp, path)


def planned_steps(config: str, overrides: list[str]) -> int:
    """The optimiser steps a run of ``config`` with ``overrides`` trains for: part of a row's identity, so a
    record made with ``--extra train.steps=4000`` and one made after the config's default became 4,000 are
    the same row, and records made at another budget stay apart."""
    from trspose.config import load_config

    return load_config(REPO / config, overrides).train.steps


def without_steps(extra: list[str]) -> list[str]:
    """``--extra`` overrides other than the step budget (which is compared through ``steps``)."""
    return [e for e in extra if not e.replace(" ", "").startswith("train.steps=")]


def same_budget(record: dict, config: str, steps: int, extra: list[str]) -> bool:
    """Whether ``record`` was made with this config, step budget and other extra overrides."""
    return (
        record["config"] == config
        and record["steps"] == steps
        and without_steps(record.get("extra", [])) == without_steps(extra)
    )


def train_command(config: str, name: str, output_dir: str, overrides: list[str]) -> list[str]:
    trspose = [sys.executable, "-m", "trspose.cli"]
    return [*trspose, "train", config, f"name={name}", f"output_dir={output_dir}", *overrides, "--overwrite"]


def run_and_record(*, config: str, name: str, output_dir: str, overrides: list[str], labels: dict) -> dict:
    """Train (in a subprocess, so every run starts from a clean interpreter) and summarise the run folder."""
    command = train_command(config, name, output_dir, overrides)
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"run {name} failed:\n{done.stderr[-4000:]}")
    run = REPO / output_dir / name
    final = json.loads((run / "final_metrics.json").read_text())
    split = json.loads((run / "split.json").read_text()) if (run / "split.json").is_file() else {}
    env_record = json.loads((run / "environment.json").read_text())
    resolved = (run / "config.yaml").read_text()
    return {
        **labels,
        "num_labeled": len(split.get("train_ann_ids", [])) or None,
        "num_holdout": len(split.get("holdout_ann_ids", [])),
        "steps": final["step"],
        "ap": final["val/AP"],
        "ap50": final["val/AP50"],
        "ap75": final["val/AP75"],
        "ar": final["val/AR"],
        "wall_s": round(wall, 1),
        "device": env_record["device"],
        "torch": env_record["versions"]["torch"],
        "git_revision": env_record["git_revision"],
        "config": config,
        "overrides": overrides,
        "command": shlex.join(["trspose", *command[3:]]),
        "resolved_config_yaml": resolved,
        "curve": learning_curve(run / "metrics.jsonl"),
    }


def learning_curve(metrics_file: Path) -> list[list[float]]:
    """[[step, validation AP], ...] from the periodic and final evaluations of a run."""
    points = []
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("val/AP") is not None:
            points.append([record["step"], record["val/AP"]])
    return points


def summary_table(records: list[dict], keys: list[str]) -> str:
    """Markdown table with one row per distinct value of ``keys``: seeds, AP mean ± sd, AP50, AR, wall time."""
    import statistics

    header = [*keys, "seeds", "AP (mean ± sd)", "AP50", "AR", "wall s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    for values, group in groups.items():
        aps = [r["ap"] for r in group]
        sd = statistics.stdev(aps) if len(aps) > 1 else 0.0
        shown = [f"{v:.0%}" if k == "labeled_fraction" else str(v) for k, v in zip(keys, values)]
        lines.append(
            "| " + " | ".join(shown) + f" | {len(group)} | {statistics.mean(aps):.1f} ± {sd:.1f} | "
            f"{statistics.mean(r['ap50'] for r in group):.1f} | {statistics.mean(r['ar'] for r in group):.1f} | "
            f"{statistics.mean(r['wall_s'] for r in group):.0f} |"
        )
    return "\n".join(lines)


def plot_curves(panels: dict[str, list[tuple[str, list]]], path: Path) -> None:
    """One subplot per panel title, one line per (label, [[step, AP], ...]); validation AP against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, curve in lines:
            steps, aps = zip(*curve)
            ax.plot(steps, aps, label=label, linewidth=1, marker=".")
        ax.set(title=title, xlabel="step", ylabel="val AP")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
