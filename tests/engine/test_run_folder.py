"""The run folder (engine/run_folder.py): never overwritten unless asked, resumed only with the run's own config,
metrics appended as JSON lines with undefined values as null."""

from __future__ import annotations

import json
import math

import pytest

from tests.tiny_runs import TINY
from trspose.config import dump_yaml, load_config
from trspose.engine.run_folder import MetricsLogger, check_resumed_config, prepare_run_folder
from trspose.errors import TrainingError


def test_a_run_folder_is_made_and_then_kept_unless_overwrite_is_asked(tmp_path):
    cfg = load_config(TINY, [f"output_dir={tmp_path}", "name=run"])
    run = prepare_run_folder(cfg, resume=False, overwrite=False)
    assert run == tmp_path / "run" and (run / "checkpoints").is_dir()
    (run / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    with pytest.raises(TrainingError, match="already exists; pass --resume to continue it, --overwrite"):
        prepare_run_folder(cfg, resume=False, overwrite=False)
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"a checkpoint"
    prepare_run_folder(cfg, resume=False, overwrite=True)
    assert list((run / "checkpoints").iterdir()) == []  # replaced


def test_a_resume_needs_the_runs_own_config_and_names_what_changed(tmp_path):
    cfg = load_config(TINY, [f"output_dir={tmp_path}", "name=run"])
    with pytest.raises(TrainingError, match="does not exist .*start the run without --resume"):
        prepare_run_folder(cfg, resume=True, overwrite=False)
    run = prepare_run_folder(cfg, resume=False, overwrite=False)
    (run / "config.yaml").write_text(dump_yaml(cfg))
    check_resumed_config(load_config(TINY, [f"output_dir={tmp_path}", "name=run", "data.workers=4"]),
                         run / "config.yaml")  # fmt: skip  # how fast, not what: allowed
    with pytest.raises(TrainingError, match=r"train\.steps: 6 -> 7"):
        check_resumed_config(load_config(TINY, ["train.steps=7"]), run / "config.yaml")


def test_metrics_are_json_lines_with_undefined_values_as_null(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log(5, {"loss/total": 0.25, "val/APm": math.nan}, kind="eval")
    logger.log(10, {"loss/total": math.inf})
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kind"]) for r in lines] == [(5, "eval"), (10, "train")]
    assert lines[0]["loss/total"] == 0.25 and lines[0]["val/APm"] is None and lines[1]["loss/total"] is None
    assert any((tmp_path / "tensorboard").iterdir())  # the same scalars for TensorBoard
