"""Shared by the results-table benchmarks: run one training job, turn its run folder into a record.

Each record: method, ablation, num_labeled, labeled_fraction, seed, steps, AP/AP50/AP75/AR (percent),
wall_s, device, config and the exact command, appended to a JSON list that is rewritten atomically
after every run, so an interrupted table keeps what it has and a rerun skips what is done. A row whose run was
interrupted (its folder has ``checkpoints/last.pt`` and the row's config) is resumed, not started again, so a table
longer than one sitting is made over several.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def save_records(records: list[dict], path: Path) -> None:
    from trspose.io import write_json

    write_json(records, path)  # atomic: an interrupted table keeps what it has


def resolved_config(config: str, overrides: list[str], unread: bool = False) -> dict:
    """What a run of ``config`` with ``overrides`` computes: its full config as a dict, without the run's name and
    folder. This is a row's identity: a record counts for a row only if its run trained with exactly this.
    ``unread``: keep the keys its method never reads, as a resumed run compares them (see ``comparable``)."""
    from trspose.config import config_to_dict, load_config

    return comparable(config_to_dict(load_config(REPO / config, overrides)), unread)


def recorded_config(record: dict) -> dict | None:
    """The config a record's run trained with (its resolved YAML), keys added since filled with their defaults
    (which reproduce the old behaviour); None when this version cannot read it (a key that no longer exists)."""
    return config_of_yaml(record.get("resolved_config_yaml"))


def config_of_yaml(text: str | None, unread: bool = False) -> dict | None:
    """A resolved config YAML (a record's, or a run folder's ``config.yaml``) as ``resolved_config`` returns it;
    None when there is none or this version cannot read it."""
    import yaml

    from trspose.config import config_from_dict, config_to_dict
    from trspose.errors import TrsposeError

    if not text:
        return None
    try:
        return comparable(config_to_dict(config_from_dict(yaml.safe_load(text))), unread)
    except TrsposeError:
        return None


def comparable(config: dict, unread: bool = False) -> dict:
    """``config`` without the keys that do not change what a run trains (``RESUME_MAY_CHANGE``: its name and folder,
    data workers, evaluation batch size, which checkpoints it keeps...), so a row trained with more workers on
    another machine is the same row. Likewise the reviewer's knobs where no reviewer is trained with (every method
    but TRS, and TRS with ``reviewer.policy=none``): a change to TRS's reviewer leaves those rows standing; with
    ``unread`` they stay, since ``trspose train --resume`` refuses any changed key."""
    from trspose.engine.run_folder import RESUME_MAY_CHANGE

    kept = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key in RESUME_MAY_CHANGE:
        section, _, name = key.rpartition(".")
        (kept.get(section, {}) if section else kept).pop(name, None)
    method = kept.get("method", {})
    if not unread and (method.get("name") != "trs" or method.get("reviewer", {}).get("policy") == "none"):
        method["reviewer"] = {"policy": "none"}
    return kept


def find_record(records: list[tuple[dict, dict | None]], wanted: dict) -> dict | None:
    """The latest record (of (record, recorded_config) pairs) whose run trained with the ``wanted`` config."""
    matches = [record for record, config in records if config == wanted]
    return matches[-1] if matches else None


class ResultsFile:
    """The records of one results file, each row found by the config its run trained with."""

    def __init__(self, path: Path, runs_dir: Path = REPO / "runs" / "benchmarks") -> None:
        self.path = path
        self.runs_dir = runs_dir  # the run folders of its rows
        inside = runs_dir.is_relative_to(REPO)
        self.output_dir = str(runs_dir.relative_to(REPO) if inside else runs_dir)  # as commands name it
        self.records = load_records(path)
        self.known = [(r, recorded_config(r)) for r in self.records]

    def find(self, config: str, overrides: list[str]) -> dict | None:
        """The latest record of a run of ``config`` with ``overrides``, if there is one."""
        return find_record(self.known, resolved_config(config, overrides))

    def row(
        self, *, config: str, overrides: list[str], name: Callable[[int], str], labels: dict, table_only: bool
    ) -> dict | None:
        """The record of the run of ``config`` with ``overrides``; without one, train it (named ``name(steps)``)
        and save its record at once, or with ``table_only`` say that it is missing and return None."""
        wanted = resolved_config(config, overrides)
        if (record := find_record(self.known, wanted)) is not None:
            return record
        label = ", ".join(f"{k} {v}" for k, v in labels.items() if k != "extra")
        if table_only:
            print(f"not recorded yet: {label}")
            return None
        run_name = name(wanted["train"]["steps"])
        resume = interrupted(self.runs_dir / run_name, resolved_config(config, overrides, unread=True))
        if resume:
            print(f"{run_name}: resuming the interrupted run", flush=True)
        elif (kept := move_aside(self.runs_dir / run_name)) is not None:
            print(f"{run_name}: a run of another config had this name; it is kept as {kept.name}", flush=True)
        record = run_and_record(
            config=config,
            name=run_name,
            output_dir=self.output_dir,
            overrides=overrides,
            labels=labels,
            resume=resume,
        )
        self.records.append(record)
        self.known.append((record, wanted))
        save_records(self.records, self.path)
        print(f"{run_name}: AP {record['ap']:.1f} ({record['wall_s']:.0f} s)", flush=True)
        return record


def config_changes(config: dict, base: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """The dotted overrides that turn ``base`` into ``config`` (both resolved), except the keys in ``ignore``."""
    from trspose.config import changed_keys, dotted_items

    items = dotted_items(config)
    return [f"{key}={items[key]}" for key in changed_keys(base, config, ignore) if key in items]


def curve_panels_by_config(
    records: list[dict], base: dict, row_keys: tuple[str, ...], label: Callable[[dict], str]
) -> dict[str, list[tuple[str, list]]]:
    """One panel per config that the records' runs trained with, ignoring the keys that make a table's rows
    (seed, labelled subset): titled by the step count and how that config differs from ``base``; one line per
    record, named ``label(record)``. Records whose config this version cannot read go in an "older config" panel."""
    panels: dict[str, list[tuple[str, list]]] = {}
    for record in records:
        config = recorded_config(record)
        if config is None:
            title = f"{record['steps']} steps, older config"
        else:
            changes = [c for c in config_changes(config, base, row_keys) if not c.startswith("train.steps=")]
            title = f"{config['train']['steps']} steps" + "".join(f", {c}" for c in changes)
        panels.setdefault(title, []).append((label(record), record["curve"]))
    return panels


def name_part(overrides: list[str]) -> str:
    """``["train.steps=2000", "data.root=/x"]`` -> ``"_train.steps2000_data.root-x"``, safe in a folder name."""
    return "".join("_" + o.replace("=", "").replace("/", "-").replace(" ", "") for o in overrides)


def interrupted(run: Path, wanted: dict) -> bool:
    """Whether ``run`` is a run of the ``wanted`` config (``resolved_config(..., unread=True)``) that can be resumed
    (it has ``checkpoints/last.pt``)."""
    saved = run / "config.yaml"
    if not (run / "checkpoints" / "last.pt").is_file() or not saved.is_file():
        return False
    return config_of_yaml(saved.read_text(), unread=True) == wanted


def move_aside(run: Path) -> Path | None:
    """Rename the folder ``run`` (and its segments file) to ``<name>.replaced-<time>`` if it holds a finished run, so
    that a new run of that name (``--overwrite`` deletes the folder) does not take the logs and checkpoints of a run
    of another config, whose record may stand for another design's table. An unfinished run of another config is
    left to ``--overwrite``. Returns the new folder, or None."""
    if not (run / "final_metrics.json").is_file():
        return None
    kept = run.with_name(f"{run.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
    run.rename(kept)
    segments = run.parent / f"{run.name}.segments.json"
    if segments.is_file():
        segments.rename(kept.parent / f"{kept.name}.segments.json")
    return kept


def train_command(
    config: str, name: str, output_dir: str, overrides: list[str], resume: bool = False
) -> list[str]:
    trspose = [sys.executable, "-m", "trspose.cli"]
    then = "--resume" if resume else "--overwrite"
    return [*trspose, "train", config, f"name={name}", f"output_dir={output_dir}", *overrides, then]


def run_and_record(
    *, config: str, name: str, output_dir: str, overrides: list[str], labels: dict, resume: bool = False
) -> dict:
    """Train (in a subprocess, so every run starts from a clean interpreter; with ``resume``, continue the run
    from its last checkpoint) and summarise the run folder."""
    run = REPO / output_dir / name
    command = train_command(config, name, output_dir, overrides, resume)
    # when each sitting started, beside the run folder (which --overwrite replaces)
    segments_file = run.parent / f"{name}.segments.json"
    segments = load_records(segments_file) if resume else []
    from_step = _checkpoint_step(run / "checkpoints" / "last.pt") if resume else 0
    segments.append({"started": time.time(), "from_step": from_step})
    run.parent.mkdir(parents=True, exist_ok=True)
    save_records(segments, segments_file)
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"run {name} failed:\n{done.stderr[-4000:]}")
    try:  # with any note a person added while it trained; a file they broke must not cost the record
        segments = load_records(segments_file) or segments
    except (OSError, json.JSONDecodeError) as error:
        print(
            f"{segments_file}: not readable ({error}); the record keeps the sittings as they started",
            flush=True,
        )
    wall += interrupted_time(segments, run / "metrics.jsonl")
    final = json.loads((run / "final_metrics.json").read_text())
    split = json.loads((run / "split.json").read_text()) if (run / "split.json").is_file() else {}
    env_record = json.loads((run / "environment.json").read_text())
    # the code each sitting ran: the trainer notes it at the start and at every resume (environment.json)
    revision_at = {0: env_record["git_revision"]} | {
        r["step"]: r["git_revision"] for r in env_record.get("resumed", [])
    }
    segments = [
        {**s, "git_revision": revision_at[s["from_step"]]} if s["from_step"] in revision_at else s
        for s in segments
    ]
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
        # segments: 1 when trained in one go, more when resumed after interruptions (wall_s sums them);
        # sittings: when each began, from which step, and any note left in the segments file
        "segments": len(segments),
        "sittings": segments,
        "device": env_record["device"],
        "torch": env_record["versions"]["torch"],
        "git_revision": env_record["git_revision"],
        "config": config,
        "overrides": overrides,
        "command": shlex.join(["trspose", *train_command(config, name, output_dir, overrides)[3:]]),
        "resolved_config_yaml": resolved,
        "curve": learning_curve(run / "metrics.jsonl"),
        "pseudo_quality": last_pseudo_quality(run / "metrics.jsonl"),
        # what the trainer has done since the fix; older records measured the reviewer after the evaluation had
        # refreshed it (ssl_synthetic.py: reviewer_measures)
        "pseudo_quality_of": "the reviewer the student learned from",
    }


def _checkpoint_step(path: Path) -> int:
    from trspose.engine.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["step"])


def interrupted_time(segments: list[dict], metrics_file: Path) -> float:
    """Seconds the interrupted sittings of a run trained for: each from its start to its last metrics record at or
    before the step the next sitting resumed from (work after that checkpoint was lost and done again)."""
    records = (
        [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.is_file() else []
    )
    total = 0.0
    for segment, following in zip(segments, segments[1:]):
        ends = [
            r["time"]
            for r in records
            if r["step"] <= following["from_step"] and segment["started"] <= r["time"] < following["started"]
        ]
        total += max(ends) - segment["started"] if ends else 0.0
    return total


def learning_curve(metrics_file: Path) -> list[list[float]]:
    """[[step, validation AP], ...] from the periodic and final evaluations of a run."""
    points = []
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("val/AP") is not None:
            points.append([record["step"], record["val/AP"]])
    return points


def last_pseudo_quality(metrics_file: Path) -> dict[str, float]:
    """The pseudo-label measurements (``pseudo_quality/*``, percent) of a run's last evaluation; empty if none."""
    last: dict[str, float] = {}
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        found = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("pseudo_quality/")}
        last = found or last
    return last


def summary_table(records: list[dict], keys: list[str]) -> str:
    """Markdown table with one row per distinct value of ``keys``: seeds, AP mean ± sd (no sd for one seed) and
    per seed (in seed order), AP50, AR, wall time per run. A row whose runs carry notes (a pause, say, which
    the wall time includes) marks its wall time with ``*`` and lists the notes under the table."""
    import statistics

    rows, notes = [], []
    for values, group in row_groups(records, keys).items():
        aps = [r["ap"] for r in group]
        sd = f" ± {statistics.stdev(aps):.1f}" if len(aps) > 1 else ""  # one seed has no spread to show
        noted = [(r, note) for r in group for note in record_notes(r)]
        notes += [f"* {' '.join(_shown(keys, values))} seed {r.get('seed', 0)}: {note}" for r, note in noted]
        rows.append([*_shown(keys, values), str(len(group)), f"{statistics.mean(aps):.1f}{sd}",
                     ", ".join(f"{ap:.1f}" for ap in aps), f"{statistics.mean(r['ap50'] for r in group):.1f}",
                     f"{statistics.mean(r['ar'] for r in group):.1f}",
                     f"{statistics.mean(r['wall_s'] for r in group) / 60:.1f}{'*' if noted else ''}"])  # fmt: skip
    table = markdown_table(
        [*keys, "seeds", "AP (mean ± sd)", "AP per seed", "AP50", "AR", "wall min/run"], rows
    )
    return table + "".join("\n" + note for note in notes)


def record_notes(record: dict) -> list[str]:
    """The notes a person left on a run: the record's own ``note`` and any left in a sitting's segments file."""
    sittings = [s["note"] for s in record.get("sittings", []) if s.get("note")]
    return ([record["note"]] if record.get("note") else []) + sittings


def row_groups(records: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    """Records by their values of ``keys`` (a table's rows), in first-seen order; each row's seeds in seed order."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return {values: sorted(group, key=lambda r: r.get("seed", 0)) for values, group in groups.items()}


def commands_table(records: list[dict], keys: list[str]) -> str:
    """Markdown table: per row, the command that trained its first seed (the other seeds' commands differ in the
    seeds and the run name, except rows whose runs come from another table), its seeds and the devices its runs
    trained on."""
    rows = []
    for values, group in row_groups(records, keys).items():
        seeds = ", ".join(str(r.get("seed", "-")) for r in group)
        devices = "; ".join(sorted({r.get("device", "?") for r in group}))
        rows.append([*_shown(keys, values), seeds, devices, f"`{group[0]['command']}`"])
    return markdown_table([*keys, "seeds", "devices", "command (first seed)"], rows)


def _shown(keys: list[str], values: tuple) -> list[str]:
    return [f"{v:.0%}" if k == "labeled_fraction" else str(v) for k, v in zip(keys, values)]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of ``header`` and ``rows`` (cells already formatted)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def plot_curves(panels: dict[str, list[tuple[str, list]]], path: Path, seed_bands: bool = False) -> None:
    """One subplot per panel title, one line per (label, [[step, AP], ...]); validation AP against step. Labels
    ending in " s<seed>" are seeds of one row: one colour per row, seeds by line style, or with ``seed_bands`` one
    line per row (the mean over its seeds, at the steps all of them logged) in a band from their min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panel_rows = {title: _rows_of(lines) for title, lines in panels.items()}
    names = list(dict.fromkeys(group for rows in panel_rows.values() for group in rows))
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = {
        group: palette(i % palette.N) for i, group in enumerate(names)
    }  # one colour per row, every panel
    count = max(1, len(panels))
    columns = min(3, count)  # a grid of at most 3 panels a row, so that each stays readable
    grid_rows = -(-count // columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(9 * columns, 4.5 * grid_rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, rows) in zip(axes.flat, panel_rows.items()):
        for group, seeds in rows.items():
            common = sorted(set.intersection(*(set(step for step, _ in curve) for curve in seeds.values())))
            if not seed_bands or not common:  # every seed its own line (also when the seeds share no step)
                for seed, curve in seeds.items():
                    steps, aps = zip(*curve)
                    label = group if seed is None else f"{group} s{seed}"
                    style = ["-", "--", ":", "-."][(seed or 0) % 4]
                    ax.plot(
                        steps,
                        aps,
                        label=label,
                        linewidth=1,
                        marker=".",
                        color=colours[group],
                        linestyle=style,
                    )
                continue
            by_step = [dict(curve) for curve in seeds.values()]
            aps = np.array([[ap[step] for step in common] for ap in by_step])  # (seeds, steps)
            label = f"{group} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
            ax.plot(common, aps.mean(axis=0), label=label, linewidth=1.2, marker=".", color=colours[group])
            if len(seeds) > 1:
                ax.fill_between(
                    common, aps.min(axis=0), aps.max(axis=0), color=colours[group], alpha=0.15, linewidth=0
                )
        suffix = " (mean over seeds, band: min to max)" if seed_bands else ""
        ax.set(title=title + suffix, xlabel="step", ylabel="val AP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside, never over a curve
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rows_of(lines: list[tuple[str, list]]) -> dict[str, dict[int | None, list]]:
    """Curves by row (the label without a trailing " s<seed>") and seed (None for a label without one)."""
    rows: dict[str, dict[int | None, list]] = {}
    for label, curve in sorted(lines, key=lambda line: line[0]):
        group, _, seed = label.rpartition(" s")
        group, seed = (group, int(seed)) if group and seed.isdigit() else (label, None)
        rows.setdefault(group, {})[seed] = curve
    return rows
