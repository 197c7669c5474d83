"""The results-table scripts decide which recorded runs belong to a row by the config the run trained with."""

import json
import time

import pytest
import torch
import yaml

import runs  # benchmarks/runs.py: benchmarks/ is on pytest's pythonpath (pyproject.toml)
from trspose.config import config_to_dict, dump_yaml, load_config

CONFIG = "configs/supervised_lite0_fpn_128x96_synthetic.yaml"


def record_of(config: str, overrides: list[str], **labels) -> dict:
    cfg = load_config(runs.REPO / config, [*overrides, "name=some_run", "output_dir=elsewhere"])
    return {"config": config, **labels, "resolved_config_yaml": dump_yaml(cfg)}


def test_a_record_counts_for_the_row_whose_config_its_run_trained_with():
    row = ["data.labeled_fraction=0.05", "data.split_mode=random", "train.seed=1", "data.split_seed=1"]
    same = record_of(CONFIG, row, tag="same")
    steps_1000 = record_of(CONFIG, [*row, "train.steps=1000"], tag="1000")
    other_seed = record_of(CONFIG, [*row[:2], "train.seed=0", "data.split_seed=0"], tag="seed0")
    old = yaml.safe_load(same["resolved_config_yaml"])
    del old["data"]["strong_view"]  # recorded before this section existed: its defaults are what ran
    older_version = {"tag": "older", "resolved_config_yaml": yaml.safe_dump(old)}
    gone = yaml.safe_load(same["resolved_config_yaml"])
    gone["train"]["no_longer_a_key"] = 1
    unreadable = {"tag": "unreadable", "resolved_config_yaml": yaml.safe_dump(gone)}
    records = [same, steps_1000, other_seed, older_version, unreadable, {"tag": "no yaml"}]
    known = [(r, runs.recorded_config(r)) for r in records]
    assert known[4][1] is None and known[5][1] is None

    def tag(overrides):
        found = runs.find_record(known, runs.resolved_config(CONFIG, overrides))
        return found and found["tag"]

    assert tag(row) == "older"  # the latest of the two runs with this config
    assert tag([*row, "train.steps=1000"]) == "1000"
    assert tag([*row, "train.steps = 1000"]) == "1000"  # compared as configs, not as override text
    assert tag([*row, "train.steps=3000"]) is None
    assert tag([*row, "data.strong_view.blur_sigma=[0.1,0.7]"]) is None  # a changed config is another row
    # what a resume may change trains the same: the same row
    assert tag([*row, "train.keep_checkpoints=true", "data.workers=12", "eval.batch_size=256"]) == "older"
    full = config_to_dict(load_config(runs.REPO / CONFIG, row))
    for section, key in [("train", "keep_checkpoints"), ("data", "workers"), ("eval", "batch_size"),
                         ("eval", "pseudo_label_people")]:  # fmt: skip
        del full[section][key]
    full["method"]["reviewer"] = {"policy": "none"}  # supervised training has no reviewer to configure
    assert runs.resolved_config(CONFIG, row) == {
        k: v for k, v in full.items() if k not in ("name", "output_dir")
    }


def test_the_reviewers_knobs_count_only_for_runs_that_train_with_a_reviewer():
    import ssl_synthetic

    share = ["method.reviewer.weight_mode=share", "method.reviewer.weight=0.25"]
    for method, ablation, overrides in ssl_synthetic.ROWS:
        row = runs.resolved_config(ssl_synthetic.CONFIG, overrides)
        same = row == runs.resolved_config(ssl_synthetic.CONFIG, [*overrides, *share])
        assert same == (method != "trs" or ablation == "no reviewer"), (method, ablation)
        # but `trspose train --resume` compares every key: for resuming, a changed reviewer knob is another run
        resumable = runs.resolved_config(ssl_synthetic.CONFIG, overrides, unread=True)
        assert resumable != runs.resolved_config(ssl_synthetic.CONFIG, [*overrides, *share], unread=True)


def test_run_names_from_overrides_are_single_folder_names():
    assert runs.name_part(["train.steps=2000", "data.root=/data/x y"]) == "_train.steps2000_data.root-data-xy"


def test_curve_panels_keep_runs_of_other_configs_apart_and_seeds_together():
    base = runs.resolved_config(CONFIG, [])
    row_keys = ("train.seed", "data.split_seed", "data.labeled_fraction", "data.split_mode")
    records = [
        {**record_of(CONFIG, [f"train.seed={seed}", f"data.split_seed={seed}", *subset, *extra]), "tag": tag}
        for seed in (0, 1)
        for subset in ([], ["data.labeled_fraction=0.05", "data.split_mode=random"])
        for extra, tag in (([], "default"), (["train.lr=3e-3"], "lr"), (["train.steps=1000"], "short"))
    ]
    records.append({"steps": 900, "tag": "unreadable", "resolved_config_yaml": "train: {gone: 1}\n"})
    for record in records:
        record["curve"] = [[0, 0.0], [1, float(len(record["tag"]))]]
    panels = runs.curve_panels_by_config(records, base, row_keys, label=lambda r: r["tag"])
    assert {title: {tag for tag, _ in lines} for title, lines in panels.items()} == {
        "2000 steps": {"default"},
        "2000 steps, train.lr=0.003": {"lr"},
        "1000 steps": {"short"},
        "900 steps, older config": {"unreadable"},
    }
    assert [len(panels[t]) for t in ("2000 steps", "2000 steps, train.lr=0.003", "1000 steps")] == [4, 4, 4]
    assert runs.config_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c=2"]
    assert runs.config_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 0, "c": 3}}, ignore=("a.b",)) == ["a.c=2"]


def test_interrupted_sittings_count_until_the_checkpoint_the_next_one_resumed_from(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    lines = [(2, 110.0), (4, 120.0), (6, 130.0), (4, 520.0), (6, 530.0), (8, 540.0)]  # resumed at step 4
    metrics.write_text("".join(json.dumps({"step": s, "time": t}) + "\n" for s, t in lines))
    segments = [{"started": 100.0, "from_step": 0}, {"started": 500.0, "from_step": 4}]
    assert runs.interrupted_time(segments, metrics) == 20.0  # 100 s -> the step-4 record at 120 s
    assert runs.interrupted_time(segments[:1], metrics) == 0.0  # one sitting: its wall time is measured
    assert runs.interrupted_time([*segments, {"started": 900.0, "from_step": 8}], metrics) == 60.0


@pytest.mark.slow
def test_a_row_whose_run_was_interrupted_is_resumed_not_started_again(tmp_path, monkeypatch):
    from tests.interrupt import interrupt_supervised_training
    from tests.stick_figures import write_stick_figure_dataset
    from trspose.engine import trainer
    from trspose.engine.checkpoint import load_checkpoint
    from trspose.engine.run_folder import git_revision

    root = write_stick_figure_dataset(tmp_path / "sticks")
    runs_dir = tmp_path / "bench"
    config, overrides = "configs/tiny.yaml", [f"data.root={root}"]
    wanted = runs.resolved_config(config, overrides)
    interrupt_supervised_training(monkeypatch, at_step=3)
    runs_dir.mkdir()
    first_sitting = time.time()
    (runs_dir / "row.segments.json").write_text(json.dumps([{"started": first_sitting, "from_step": 0}]))
    with pytest.raises(KeyboardInterrupt):
        trainer.train(load_config(runs.REPO / config, [*overrides, f"output_dir={runs_dir}", "name=row"]))
    monkeypatch.undo()
    run = runs_dir / "row"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3
    assert runs.interrupted(run, runs.resolved_config(config, overrides, unread=True))
    assert not runs.interrupted(run, runs.resolved_config(config, [*overrides, "train.lr=3e-3"], unread=True))
    # a reviewer knob supervised training never reads: the same row, but `--resume` would refuse it, so start again
    reviewer = [*overrides, "method.reviewer.weight=0.25"]
    assert runs.resolved_config(config, reviewer) == wanted
    assert not runs.interrupted(run, runs.resolved_config(config, reviewer, unread=True))
    first_records = (run / "metrics.jsonl").read_text().splitlines()[:3]

    real_run = runs.subprocess.run

    def run_and_leave_a_note(
        command, *args, **kwargs
    ):  # a person notes a pause in the segments file meanwhile
        done = real_run(command, *args, **kwargs)
        if "train" not in command:
            return done  # e.g. git, asked for the revision
        sittings = json.loads((runs_dir / "row.segments.json").read_text())
        sittings[-1]["note"] = "paused 300 s"
        (runs_dir / "row.segments.json").write_text(json.dumps(sittings))
        return done

    monkeypatch.setattr(runs.subprocess, "run", run_and_leave_a_note)
    results = runs.ResultsFile(tmp_path / "results.json", runs_dir=runs_dir)
    record = results.row(
        config=config, overrides=overrides, name=lambda steps: "row", labels={"method": "x"}, table_only=False
    )
    assert record["steps"] == 6 and record["segments"] == 2
    assert [sitting["from_step"] for sitting in record["sittings"]] == [0, 3]
    assert record["sittings"][1]["note"] == "paused 300 s"
    assert record["sittings"][1]["git_revision"] == git_revision()  # the code each sitting ran
    assert record["command"].endswith("--overwrite")  # the command that makes the row from nothing
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines[:3] == first_records  # the first sitting's steps were kept, not trained again
    assert [json.loads(x)["step"] for x in lines if json.loads(x)["kind"] == "train"] == list(range(1, 7))
    first_sitting_s = json.loads(first_records[-1])["time"] - first_sitting
    assert record["wall_s"] >= first_sitting_s > 0
    assert json.loads((tmp_path / "results.json").read_text())[0]["ap"] == record["ap"]


def test_a_finished_run_of_another_config_is_kept_beside_the_new_run_of_its_name(tmp_path, monkeypatch):
    runs_dir = tmp_path / "bench"
    old = runs_dir / "row"
    (old / "checkpoints").mkdir(parents=True)
    (old / "final_metrics.json").write_text('{"val/AP": 31.5}')
    (old / "checkpoints" / "last.pt").write_bytes(b"weights")
    (runs_dir / "row.segments.json").write_text("[]")
    calls = []

    def train_and_record(**kwargs):  # what a new run of the name finds in its folder
        calls.append({**kwargs, "folder_there": (runs_dir / kwargs["name"]).exists()})
        return {"ap": 1.0, "wall_s": 1.0}

    monkeypatch.setattr(runs, "run_and_record", train_and_record)
    results = runs.ResultsFile(tmp_path / "results.json", runs_dir=runs_dir)
    results.row(config=CONFIG, overrides=[], name=lambda steps: "row", labels={}, table_only=False)
    assert len(calls) == 1 and not calls[0]["resume"] and not calls[0]["folder_there"]
    (kept,) = runs_dir.glob("row.replaced-*[0-9]")
    assert (kept / "final_metrics.json").read_text() == '{"val/AP": 31.5}'
    assert (kept / "checkpoints" / "last.pt").read_bytes() == b"weights"
    assert (runs_dir / f"{kept.name}.segments.json").read_text() == "[]"
    # an unfinished run of another config cannot be resumed and holds no result: --overwrite replaces it
    (runs_dir / "other" / "checkpoints").mkdir(parents=True)
    assert runs.move_aside(runs_dir / "other") is None and (runs_dir / "other").is_dir()


@pytest.mark.parametrize("fraction", [0.01, 1.0])
def test_the_ssl_tables_supervised_rows_are_the_gap_tables_runs(fraction):
    import ssl_synthetic
    from trspose.config import changed_keys

    subset = [f"data.labeled_fraction={fraction}", "data.split_mode=random"] if fraction < 1.0 else []
    seeds = ["train.seed=1", "data.split_seed=1"]
    row = ssl_synthetic.UPPER_BOUND if fraction == 1.0 else ssl_synthetic.ROWS[0]
    assert row[0] == "supervised"
    earlier = list(ssl_synthetic.PROTOCOL_2000.extra)  # the gap table's budget, whatever CONFIG trains today
    ssl_row = runs.resolved_config(ssl_synthetic.CONFIG, [*subset, *row[2], *seeds, *earlier])
    gap_run = runs.resolved_config(ssl_synthetic.SUPERVISED_CONFIG, [*subset, *seeds])
    # Nothing that supervised training reads differs: same model (no MFL heads), data, subset, schedule, seeds.
    assert set(changed_keys(gap_run, ssl_row)) == ssl_synthetic.SUPERVISED_ROW_DIFFERS
    unread = (
        "method.",
        "data.weak_view.",
        "data.strong_view.",
        "data.unlabeled_box_jitter",
        "train.unlabeled_",
    )
    assert all(k == "train.eval_every" or k.startswith(unread) for k in ssl_synthetic.SUPERVISED_ROW_DIFFERS)
    assert ssl_row["method"]["name"] == gap_run["method"]["name"] == "supervised"


def test_the_ssl_table_runs_the_ablations_at_the_lowest_budget_and_seeds_the_main_rows_three_times():
    import ssl_synthetic

    protocol = ssl_synthetic.PROTOCOL_2000
    jobs = ssl_synthetic.table_jobs(protocol.rows(), [0.01, 0.05], [0, 1], 2)
    rows = {(fraction, method, ablation): seeds for fraction, method, ablation, _, seeds in jobs}
    assert {(m, a) for f, m, a in rows if f == 0.01} == {(m, a) for m, a, _ in protocol.rows()}
    assert {(m, a) for f, m, a in rows if f == 0.05} == ssl_synthetic.MAIN_ROWS
    assert rows[(0.01, "trs", "full")] == rows[(0.01, "dual", "-")] == [0, 1, 2]
    assert rows[(0.01, "trs", "no MFL")] == rows[(0.05, "trs", "full")] == [0, 1]
    assert rows[(1.0, "supervised", "all labels")] == [0, 1]
    assert len(jobs) == len(protocol.rows()) + len(ssl_synthetic.MAIN_ROWS) + 1
    assert all(seeds == [0, 1] for *_, seeds in ssl_synthetic.table_jobs(protocol.rows(), [0.01], [0, 1], -1))
    # a protocol trains the main rows and its own ablations, in ROWS' order, and no other
    other = ssl_synthetic.Protocol("other", (), (0.02,), ("no MFL", "reviewer memory"))
    assert [r[:2] for r in other.rows()] == [
        ("supervised", "-"), ("mean_teacher", "-"), ("dual", "-"), ("trs", "full"), ("trs", "no MFL"),
        ("trs", "reviewer memory"),
    ]  # fmt: skip
    assert ("trs", "reviewer memory") not in {r[:2] for r in protocol.rows()}  # not trained at 2,000 steps


def test_the_ssl_tables_paired_comparison_subtracts_the_reference_rows_ap_seed_by_seed():
    import ssl_synthetic

    def rows(method, ablation, fraction, aps):
        keys = {"method": method, "ablation": ablation, "labeled_fraction": fraction}
        return [{**keys, "seed": seed, "ap": ap} for seed, ap in aps.items()]

    records = [
        *rows("supervised", "-", 0.01, {0: 10.0, 1: 12.0}),
        *rows("mean_teacher", "-", 0.01, {0: 13.0, 1: 14.0}),
        # seed 2 has no supervised or mean-teacher twin: left out of the comparison
        *rows("trs", "full", 0.01, {0: 14.0, 1: 14.0, 2: 20.0}),
        *rows("supervised", "all labels", 1.0, {0: 31.0, 1: 33.0}),
    ]
    lines = ssl_synthetic.paired_table(records).splitlines()
    assert "gap closed" in lines[0] and "AP - mean_teacher (seeds)" in lines[0]
    assert len(lines) == 4  # the semi-supervised rows only
    # (3 + 2) / 2 = 2.5 AP over supervised, of a 32 - 11 = 21 AP gap
    assert lines[2] == "| 1% | mean_teacher | - | 12 % | +2.5 ± 0.7 (2) | - | -0.5 ± 0.7 (2) |"
    assert lines[3] == "| 1% | trs | full | 14 % | +3.0 ± 1.4 (2) | +0.5 ± 0.7 (2) | - |"
    # one seed, no mean-teacher row, no all-labels row, no gap to close: no share, no sd, '-' where nothing pairs
    lines = ssl_synthetic.paired_table(
        [*rows("supervised", "-", 0.05, {0: 5.0}), *rows("trs", "full", 0.05, {0: 6.0})]
    )
    assert lines.splitlines()[2] == "| 5% | trs | full | - | +1.0 (1) | - | - |"
    quick = [*rows("supervised", "-", 0.3, {0: 0.0}), *rows("trs", "full", 0.3, {0: 0.0})]
    quick += rows("supervised", "all labels", 1.0, {0: 0.0})  # --quick: every AP 0
    assert ssl_synthetic.paired_table(quick).splitlines()[2] == "| 30% | trs | full | - | +0.0 (1) | - | - |"


def test_the_pseudo_label_table_drops_reviewer_measures_of_a_fresh_teacher_copy_from_older_records():
    import ssl_synthetic

    keys = {"method": "trs", "ablation": "full", "labeled_fraction": 0.01}
    quality = {"pck_teacher": 70.0, "pck_target": 70.0, "kept_fraction": 99.0, "mask_precision": 70.5}

    def record(seed, reviewer, right, wrong, new=False):
        measures = {"pck_reviewer": reviewer, "reviewer_right_teacher_wrong": right,
                    "teacher_right_reviewer_wrong": wrong}  # fmt: skip
        marker = {"pseudo_quality_of": "the reviewer the student learned from"} if new else {}
        return {**keys, "seed": seed, "pseudo_quality": {**quality, **measures}, **marker}

    older_copy, older, newer_agrees = (
        record(0, 70.0, 0.0, 0.0),
        record(1, 66.0, 3.0, 7.0),
        record(2, 70.0, 0.0, 0.0, True),
    )
    assert "pck_reviewer" not in ssl_synthetic.reviewer_measures(
        older_copy
    )  # measured just after the refresh
    assert ssl_synthetic.reviewer_measures(older) == older["pseudo_quality"]
    assert ssl_synthetic.reviewer_measures(newer_agrees) == newer_agrees["pseudo_quality"]  # a real agreement
    line = ssl_synthetic.pseudo_label_table([older_copy, older, newer_agrees]).splitlines()[2]
    assert line == (
        "| 1% | trs | full | F+B 64, F 32, reviewer F 32 | 70.0 | 68.0 (2 of 3 seeds) | 70.0 | 99.0 | 70.5 | "
        "1.5 (2 of 3 seeds) | 3.5 (2 of 3 seeds) |"
    )


def ssl_row_config(fraction: float, seed: int, extra: list[str], base: list[str]) -> dict:
    """The config of the semi-supervised table's supervised row at this budget and seed under protocol ``base``."""
    import ssl_synthetic

    row = ssl_synthetic.UPPER_BOUND if fraction == 1.0 else ssl_synthetic.ROWS[0]
    subset, seeds = ssl_synthetic.subset_overrides(fraction), ssl_synthetic.seed_overrides(seed)
    return runs.resolved_config(ssl_synthetic.CONFIG, [*base, *subset, *row[2], *seeds, *extra])


def test_the_ssl_table_finds_the_gap_table_run_of_its_budget_and_seed(tmp_path):
    import ssl_synthetic

    gap = tmp_path / "supervised_synthetic.json"
    row = ["data.labeled_fraction=0.01", "data.split_mode=random"]
    records = [
        {
            **record_of(CONFIG, [*row, "train.seed=0", "data.split_seed=0"]),
            "tag": "s0",
            "curve": [[250, 0.1]],
        },
        {
            **record_of(CONFIG, [*row, "train.seed=1", "data.split_seed=1"]),
            "tag": "s1",
            "curve": [[250, 0.2]],
        },
        {**record_of(CONFIG, ["train.seed=1", "data.split_seed=1"]), "tag": "all s1", "curve": [[250, 0.3]]},
        {**record_of(CONFIG, [*row, "train.seed=1", "data.split_seed=1", "train.steps=1000"]), "tag": "1000"},
    ]
    gap.write_text(json.dumps(records))
    table = runs.ResultsFile(gap, runs_dir=tmp_path / "runs")
    earlier = list(
        ssl_synthetic.PROTOCOL_2000.extra
    )  # the gap table's schedule, whatever CONFIG trains today
    assert ssl_synthetic.supervised_record(table, ssl_row_config(0.01, 1, [], earlier))["tag"] == "s1"
    assert ssl_synthetic.supervised_record(table, ssl_row_config(1.0, 1, [], earlier))["tag"] == "all s1"
    assert ssl_synthetic.supervised_record(table, ssl_row_config(0.05, 1, [], earlier)) is None
    # a record without a learning curve cannot stand in for a row (the table draws its curve)
    assert (
        ssl_synthetic.supervised_record(table, ssl_row_config(0.01, 1, ["train.steps=1000"], earlier)) is None
    )
    # keys that supervised training does not read leave the row standing; a schedule the gap runs lack does not
    assert (
        ssl_synthetic.supervised_record(
            table, ssl_row_config(0.01, 1, ["method.burn_in_steps=100"], earlier)
        )["tag"]
        == "s1"
    )
    assert (
        ssl_synthetic.supervised_record(
            table, ssl_row_config(0.01, 1, ["train.milestones=[0.85,0.95]"], earlier)
        )
        is None
    )
    # the shipped config's protocol reuses them only while it trains the supervised config's schedule
    train = [
        {k: v for k, v in runs.resolved_config(config, [])["train"].items() if k != "eval_every"}
        for config in (ssl_synthetic.CONFIG, ssl_synthetic.SUPERVISED_CONFIG)
    ]
    found = ssl_synthetic.supervised_record(
        table, ssl_row_config(0.01, 1, [], list(ssl_synthetic.PROTOCOLS[0].extra))
    )
    assert (found is not None) == (train[0] == train[1])


def test_a_row_stands_on_its_own_record_else_on_another_tables_run_of_it(tmp_path):
    import ssl_synthetic

    trs, sup = ssl_synthetic.CONFIG, ssl_synthetic.SUPERVISED_CONFIG
    earlier = list(ssl_synthetic.PROTOCOL_2000.extra)  # the probes' schedule, whatever CONFIG trains today
    subset, seed0 = ssl_synthetic.subset_overrides(0.02), ssl_synthetic.seed_overrides(0)
    teacher = [*earlier, *subset, "method.name=mean_teacher", "model.mfl_levels=[]", *seed0]

    def results(name, records):
        (tmp_path / name).write_text(json.dumps(records))
        return runs.ResultsFile(tmp_path / name, runs_dir=tmp_path / "runs")

    def probe(config, overrides, role, fraction, tag):  # labelled as ssl_recipe_probes.py labels its records
        labels = {"probe": "p", "method": role, "labeled_fraction": fraction, "seed": 0, "tag": tag}
        return {**record_of(config, overrides), **labels, "curve": [[250, 0.1]]}

    probes = results(
        "probes.json",
        [
            probe(trs, teacher, "mean_teacher", 0.02, "probe teacher"),
            probe(sup, [*subset, *seed0], "supervised", 0.02, "probe supervised"),
            probe(sup, seed0, "all_labels", 0.02, "probe all labels"),
        ],
    )
    empty = results("empty.json", [])

    def row(method, ablation, fraction, overrides, own, gap=empty, others=probes):
        labels = {
            "method": method,
            "ablation": ablation,
            "labeled_fraction": fraction,
            "seed": 0,
            "extra": [],
        }
        return ssl_synthetic.recorded_row(own, gap, others, overrides, labels)

    def labels(record):
        return record["tag"], record["method"], record["ablation"], record["labeled_fraction"], record["seed"]

    # a probe that trained exactly the row stands for it, under the row's labels
    assert labels(row("mean_teacher", "-", 0.02, teacher, empty)) == (
        "probe teacher",
        "mean_teacher",
        "-",
        0.02,
        0,
    )
    assert row("mean_teacher", "-", 0.02, [*teacher, "train.seed=1"], empty) is None  # another config
    assert row("mean_teacher", "-", 0.02, teacher, empty, None, None) is None  # --quick looks nowhere else
    # supervised probe runs (the supervised config, the same training) under the table's labels, all labels too
    supervised = [*earlier, *subset, *ssl_synthetic.ROWS[0][2], *seed0]
    found = row("supervised", "-", 0.02, supervised, empty)
    assert labels(found) == ("probe supervised", "supervised", "-", 0.02, 0) and found["extra"] == []
    upper = [*earlier, *ssl_synthetic.UPPER_BOUND[2], *seed0]
    assert labels(row("supervised", "all labels", 1.0, upper, empty)) == (
        "probe all labels", "supervised", "all labels", 1.0, 0,
    )  # fmt: skip
    # the table's own record comes before a probe's, the gap table's before both (supervised rows)
    own = results(
        "own.json", [{**record_of(trs, teacher), "tag": "own"}, {**record_of(trs, supervised), "tag": "own"}]
    )
    assert row("mean_teacher", "-", 0.02, teacher, own)["tag"] == "own"
    assert row("supervised", "-", 0.02, supervised, own)["tag"] == "own"
    gap = results("gap.json", [probe(sup, [*subset, *seed0], "supervised", 0.02, "gap")])
    assert row("supervised", "-", 0.02, supervised, own, gap)["tag"] == "gap"


def test_a_protocol_names_only_ablation_rows_that_exist():
    import ssl_synthetic

    with pytest.raises(ValueError, match="no such ablation row.*'no reviewr'"):
        ssl_synthetic.Protocol("typo", (), (0.02,), ("no reviewr",))
    with pytest.raises(ValueError, match="no such ablation row"):
        ssl_synthetic.Protocol("a main row", (), (0.02,), ("full",))


def test_an_earlier_protocols_commands_gain_the_overrides_that_restore_its_recipe():
    import ssl_synthetic

    command = "trspose train C name=x output_dir=runs/b 'model.mfl_levels=[]' train.seed=0 train.steps=4000 --overwrite"
    record = {"config": ssl_synthetic.CONFIG, "command": command.replace("C", ssl_synthetic.CONFIG)}
    assert ssl_synthetic.reproducing(record, ()) is record
    base = ("train.steps=2000", "train.seed=0", "train.milestones=[0.7,0.9]", "model.mfl_levels=[stage2]")
    restored = ssl_synthetic.reproducing(record, base)
    # after output_dir=, those of keys the command does not set (its own train.steps, seed and MFL levels stand)
    assert restored["command"] == command.replace("C", ssl_synthetic.CONFIG).replace(
        "output_dir=runs/b ", "output_dir=runs/b 'train.milestones=[0.7,0.9]' "
    )
    assert record["command"] == command.replace("C", ssl_synthetic.CONFIG)  # not changed in place
    # the gap table's supervised runs trained another config, which the protocols do not change
    other = {"config": ssl_synthetic.SUPERVISED_CONFIG, "command": command.replace("C", "other.yaml")}
    assert ssl_synthetic.reproducing(other, base) is other
    # the protocols can be told apart: by their overrides, and their runs and pictures by steps and tag
    protocols = ssl_synthetic.PROTOCOLS
    assert len({p.extra for p in protocols}) == len({p.name for p in protocols}) == len(protocols)
    names = {
        (runs.resolved_config(ssl_synthetic.CONFIG, list(p.extra))["train"]["steps"], p.tag)
        for p in protocols
    }
    assert len(names) == len(protocols) and protocols[0].extra == ()


def test_the_2000_step_protocol_finds_its_committed_records_whatever_the_config_trains_today():
    import ssl_recipe_probes as probes

    import ssl_synthetic

    earlier = list(ssl_synthetic.PROTOCOL_2000.extra)
    results = runs.ResultsFile(runs.REPO / "benchmarks" / "results" / "ssl_synthetic.json")
    for method, ablation, overrides in ssl_synthetic.PROTOCOL_2000.rows()[1:]:  # semi-supervised, 1 %, seed 0
        row = [*earlier, "data.labeled_fraction=0.01", "data.split_mode=random", *overrides]
        record = results.find(ssl_synthetic.CONFIG, [*row, "train.seed=0", "data.split_seed=0"])
        assert record is not None and record["steps"] == 2000, (method, ablation)
    # the probes' mean-teacher rows build on it, their supervised rows on the supervised config
    (teacher, mean_teacher, overrides), supervised = probes.TODAY.jobs(0)[0], probes.TODAY.jobs(0)[1]
    assert (
        teacher == "mean_teacher"
        and mean_teacher == ssl_synthetic.CONFIG
        and overrides[: len(earlier)] == earlier
    )
    assert results.find(mean_teacher, overrides)["method"] == "mean_teacher"
    assert supervised[1] == ssl_synthetic.SUPERVISED_CONFIG and [
        j[0] for j in probes.TODAY.jobs(0, True)
    ] == ["mean_teacher", "supervised", "all_labels"]
    # a probe's change comes after the protocol's overrides, so it wins
    steps_2x = next(p for p in probes.PROBES if p.name == "steps_2x")
    assert runs.resolved_config(*steps_2x.jobs(0)[0][1:])["train"]["steps"] == 4000

    nested = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": 4}
    assert ssl_synthetic.without_keys(nested, {"a.c.d", "f"}) == {"a": {"b": 1, "c": {"e": 3}}}


def test_only_the_whole_ssl_table_redraws_its_curves():
    import ssl_synthetic

    # the protocol's budgets and the default seeds, in any order, are the whole table; a seed, a budget or no third
    # seed are part of it, whose pictures would overwrite the table's under the same file name
    protocol = ssl_synthetic.Protocol("two budgets", (), (0.01, 0.05), ())
    assert ssl_synthetic.whole_table(protocol, [0.05, 0.01], [1, 0], 2)
    assert not ssl_synthetic.whole_table(protocol, [0.05], [0, 1], 2)
    assert not ssl_synthetic.whole_table(protocol, [0.01, 0.05], [0], 2)
    assert not ssl_synthetic.whole_table(protocol, [0.01, 0.05], [0, 1], -1)
    assert ssl_synthetic.whole_table(ssl_synthetic.Protocol("one budget", (), (0.02,), ()), [0.02], [0, 1], 2)


def test_ssl_curve_panels_put_each_budget_beside_the_all_labels_runs():
    import ssl_synthetic

    def rec(method, ablation, fraction, seed):
        return {
            "method": method,
            "ablation": ablation,
            "labeled_fraction": fraction,
            "seed": seed,
            "curve": [[1, 0]],
        }

    records = [
        rec("mean_teacher", "-", 0.01, 0),
        rec("supervised", "- (gap table)", 0.01, 1),
        rec("trs", "no MFL", 0.05, 1),
        rec("supervised", "all labels (gap table)", 1.0, 0),
        {**rec("dual", "-", 0.01, 0), "curve": []},  # nothing to draw
    ]
    panels = ssl_synthetic.curve_panels(records)
    assert {fraction: [label for label, _ in curves] for fraction, (_, curves) in panels.items()} == {
        0.01: [
            "mean_teacher s0",
            "supervised (gap table) s1",
            "supervised all labels (gap table) s0",
        ],
        0.05: ["trs no MFL s1", "supervised all labels (gap table) s0"],
    }
    assert panels[0.05][0].startswith("5% labelled")


@pytest.mark.filterwarnings("ignore:No artists with labels")  # plot is replaced: nothing drawn
def test_seed_bands_draw_each_rows_mean_over_its_seeds_between_their_min_and_max(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    drawn = {}
    monkeypatch.setattr(
        Axes, "plot", lambda ax, x, y, label, **kw: drawn.setdefault(label, (list(x), list(y)))
    )
    monkeypatch.setattr(
        Axes, "fill_between", lambda ax, x, low, high, **kw: drawn.setdefault("band", (list(low), list(high)))
    )
    lines = [("trs s0", [[100, 9.0], [250, 10.0], [500, 12.0]]), ("trs s1", [[250, 14.0], [500, 16.0], [750, 17.0]]),
             ("supervised all labels s0", [[250, 30.0]]), ("dual s0", [[100, 1.0]]), ("dual s1", [[200, 2.0]])]  # fmt: skip
    runs.plot_curves({"1%": lines}, tmp_path / "curves.png", seed_bands=True)
    assert drawn["trs (2 seeds)"] == ([250, 500], [12.0, 14.0])  # only the steps both seeds logged
    assert drawn["band"] == ([10.0, 12.0], [14.0, 16.0])
    assert drawn["supervised all labels (1 seed)"] == ([250], [30.0])
    assert drawn["dual s0"] == ([100], [1.0]) and drawn["dual s1"] == (
        [200],
        [2.0],
    )  # no common step: each seed
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("panels", "size"), [(1, (900, 450)), (3, (2700, 450)), (4, (2700, 900)), (7, (2700, 1350))]
)
def test_curve_panels_wrap_into_rows_of_at_most_three(tmp_path, panels, size):
    from PIL import Image

    curves = {f"panel {i}": [("trs s0", [[250, 10.0], [500, 12.0]])] for i in range(panels)}
    runs.plot_curves(curves, tmp_path / "curves.png", seed_bands=True)
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == size  # 9 x 4.5 inches a panel (its legend beside it) at 100 dpi


def test_reviewer_candidates_average_float_weights_and_buffers_of_the_snapshots():
    import reviewer_candidates

    def net(value: float) -> torch.nn.Module:
        module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
        with torch.no_grad():
            for tensor in module.state_dict().values():
                tensor.fill_(value if tensor.dtype.is_floating_point else int(value))
        return module

    snapshots = [net(1.0), net(2.0), net(6.0)]
    average = reviewer_candidates.averaged_weights(snapshots)
    state = average.state_dict()
    assert torch.equal(state["0.weight"], torch.full((2, 1, 1, 1), 3.0))
    assert torch.equal(state["1.running_var"], torch.full((2,), 3.0))
    assert int(state["1.num_batches_tracked"]) == 1  # integer buffers: the first snapshot's
    assert not average.training
    assert torch.equal(snapshots[0].state_dict()["0.weight"], torch.ones(2, 1, 1, 1))  # inputs untouched


def test_summary_and_commands_tables_show_each_rows_seeds_in_order_with_mean_sd_and_devices():
    def rec(method, seed, ap, device="cpu A"):
        return {"method": method, "seed": seed, "ap": ap, "ap50": 2 * ap, "ar": ap + 1, "wall_s": 600.0,
                "device": device, "command": f"trspose train x.yaml train.seed={seed}"}  # fmt: skip

    records = [rec("trs", 1, 12.0, "cpu B"), rec("sup", 0, 5.0), rec("trs", 0, 10.0)]
    summary = runs.summary_table(records, ["method"]).splitlines()
    assert summary[2] == "| trs | 2 | 11.0 ± 1.4 | 10.0, 12.0 | 22.0 | 12.0 | 10.0 |"
    assert summary[3] == "| sup | 1 | 5.0 | 5.0 | 10.0 | 6.0 | 10.0 |"
    commands = runs.commands_table(records, ["method"]).splitlines()
    assert commands[2] == "| trs | 0, 1 | cpu A; cpu B | `trspose train x.yaml train.seed=0` |"
    # a pause the wall time includes: the row's wall time is marked, and the note follows the table
    records[0]["sittings"] = [{"from_step": 0, "note": "paused 4 min"}, {"from_step": 750}]
    records[1]["note"] = "paused 1 min"
    summary = runs.summary_table(records, ["method"]).splitlines()
    assert summary[2] == "| trs | 2 | 11.0 ± 1.4 | 10.0, 12.0 | 22.0 | 12.0 | 10.0* |"
    assert summary[4:] == ["* trs seed 1: paused 4 min", "* sup seed 0: paused 1 min"]


def test_a_probe_of_another_labelled_budget_pairs_with_its_own_supervised_rows_and_todays_all_labels():
    import ssl_recipe_probes as probes

    budget = next(p for p in probes.PROBES if p.name == "labels_2pct")
    assert budget.subset() == ["data.labeled_fraction=0.02", "data.split_mode=random"]
    assert probes.TODAY.subset() == ["data.labeled_fraction=0.01", "data.split_mode=random"]

    def rows(probe, role, aps):
        return [{"probe": probe, "role": role, "seed": s, "ap": ap, "wall_s": 600.0} for s, ap in aps.items()]

    records = [
        *rows("today", "mean_teacher", {0: 14.0, 1: 13.0}), *rows("today", "supervised", {0: 11.0, 1: 11.0}),
        *rows("today", "all_labels", {0: 38.0, 1: 36.0}),
        *rows("labels_2pct", "mean_teacher", {0: 24.0}), *rows("labels_2pct", "supervised", {0: 19.0}),
    ]  # fmt: skip
    lines = probes.probe_table(records, [0, 1]).splitlines()
    # +5 over its own supervised run, of the 37 - 19 = 18 AP gap to today's all-labels runs (marked *); no pairing
    # with today's rows, which trained on another labelled subset
    cells = ["24.0, -", "19.0, -", "+5.0 (1)", "28 %*", "2 % labels", "2 % labels"]
    assert lines[3].split(" | ")[2:8] == cells
    assert lines[2].split(" | ")[4:6] == ["+2.5 ± 0.7 (2)", "10 %"]
