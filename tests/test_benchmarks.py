"""The results-table scripts decide which recorded runs belong to a row by the config the run trained with."""

import sys
from pathlib import Path

import yaml

from trspose.config import config_to_dict, dump_yaml, load_config

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import runs  # noqa: E402

CONFIG = "configs/supervised_resnet10t_fpn_96x64_synthetic.yaml"


def record_of(config: str, overrides: list[str], **labels) -> dict:
    cfg = load_config(runs.REPO / config, [*overrides, "name=some_run", "output_dir=elsewhere"])
    return {"config": config, **labels, "resolved_config_yaml": dump_yaml(cfg)}


def test_a_record_counts_for_the_row_whose_config_its_run_trained_with():
    row = ["data.labeled_fraction=0.05", "data.split_mode=random", "train.seed=1", "data.split_seed=1"]
    same = record_of(CONFIG, row, tag="same")
    steps_2000 = record_of(CONFIG, [*row, "train.steps=2000"], tag="2000")
    other_seed = record_of(CONFIG, [*row[:2], "train.seed=0", "data.split_seed=0"], tag="seed0")
    old = yaml.safe_load(same["resolved_config_yaml"])
    del old["method"]["strong_view"]  # recorded before this section existed: its defaults are what ran
    older_version = {"tag": "older", "resolved_config_yaml": yaml.safe_dump(old)}
    gone = yaml.safe_load(same["resolved_config_yaml"])
    gone["train"]["no_longer_a_key"] = 1
    unreadable = {"tag": "unreadable", "resolved_config_yaml": yaml.safe_dump(gone)}
    records = [same, steps_2000, other_seed, older_version, unreadable, {"tag": "no yaml"}]
    known = [(r, runs.recorded_config(r)) for r in records]
    assert known[4][1] is None and known[5][1] is None

    def tag(overrides):
        found = runs.find_record(known, runs.resolved_config(CONFIG, overrides))
        return found and found["tag"]

    assert tag(row) == "older"  # the latest of the two runs with this config
    assert tag([*row, "train.steps=2000"]) == "2000"
    assert tag([*row, "train.steps = 2000"]) == "2000"  # compared as configs, not as override text
    assert tag([*row, "train.steps=3000"]) is None
    assert tag([*row, "method.strong_view.blur_sigma=[0.1,0.7]"]) is None  # a changed config is another row
    assert runs.resolved_config(CONFIG, row) == {
        k: v
        for k, v in config_to_dict(load_config(runs.REPO / CONFIG, row)).items()
        if k not in ("name", "output_dir")
    }


def test_run_names_from_overrides_are_single_folder_names():
    assert runs.name_part(["train.steps=2000", "data.root=/data/x y"]) == "_train.steps2000_data.root-data-xy"


def test_curve_panels_keep_runs_of_other_configs_apart_and_seeds_together():
    base = runs.resolved_config(CONFIG, [])
    row_keys = ("train.seed", "data.split_seed", "data.labeled_fraction", "data.split_mode")
    records = [
        {**record_of(CONFIG, [f"train.seed={seed}", f"data.split_seed={seed}", *subset, *extra]), "tag": tag}
        for seed in (0, 1)
        for subset in ([], ["data.labeled_fraction=0.05", "data.split_mode=random"])
        for extra, tag in (([], "default"), (["train.lr=3e-3"], "lr"), (["train.steps=2000"], "short"))
    ]
    records.append({"steps": 900, "tag": "unreadable", "resolved_config_yaml": "train: {gone: 1}\n"})
    for record in records:
        record["curve"] = [[0, 0.0], [1, float(len(record["tag"]))]]
    panels = runs.curve_panels_by_config(records, base, row_keys, label=lambda r: r["tag"])
    assert {title: {tag for tag, _ in lines} for title, lines in panels.items()} == {
        "4000 steps": {"default"},
        "4000 steps, train.lr=0.003": {"lr"},
        "2000 steps": {"short"},
        "900 steps, older config": {"unreadable"},
    }
    assert [len(panels[t]) for t in ("4000 steps", "4000 steps, train.lr=0.003", "2000 steps")] == [4, 4, 4]
    assert runs.config_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c=2"]
    assert runs.config_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 0, "c": 3}}, ignore=("a.b",)) == ["a.c=2"]
