"""End-to-end training on a tiny stick-figure COCO dataset: run folder, exact resume (supervised and
semi-supervised), bad input, torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.interrupt import interrupt_after_step, interrupt_supervised_training
from tests.tiny_runs import TINY, tiny_semi_config
from trspose.apps import jobs
from trspose.cli import main
from trspose.config import load_config
from trspose.engine import build, trainer
from trspose.engine.checkpoint import load_checkpoint
from trspose.errors import TrainingError

REPO = Path(__file__).parents[2]


def tiny_config(root: Path, out: Path, *extra: str):
    return load_config(TINY, [f"data.root={root}", f"output_dir={out}", *extra])


def student_weights(path: Path) -> dict:
    return load_checkpoint(path)["method"]["trainable"]


def test_training_writes_a_complete_run_folder(stick_root, tmp_path):
    cfg = tiny_config(stick_root, tmp_path)
    metrics = trainer.train(cfg)
    run = tmp_path / "tiny"
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "final_metrics.json", "split.json",
                 "checkpoints/last.pt", "checkpoints/best.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert set(metrics) >= {"val/AP", "val/AP50", "val/AR"}
    assert 0.0 <= metrics["val/AP"] <= 100.0 and 0.0 <= metrics["val/AR"] <= 100.0
    assert all(v != v or 0.0 <= v <= 100.0 for v in metrics.values())  # nan: no people of that size
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == list(range(1, 7))
    assert any("holdout/pck_model" in r for r in records if r["kind"] == "eval")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 6 and state["config"]["data"]["input_size"] == [64, 64]
    env = json.loads((run / "environment.json").read_text())
    assert env["versions"]["torch"] and env["git_revision"]
    # eval needs only the checkpoint, and reproduces the final validation AP
    again = jobs.evaluate_checkpoint(run / "checkpoints" / "last.pt")
    assert again["AP"] == pytest.approx(metrics["val/AP"], abs=1e-9)


def test_resume_after_a_crash_gives_the_same_weights(stick_root, tmp_path, monkeypatch):
    trainer.train(tiny_config(stick_root, tmp_path, "name=straight"))
    interrupt_supervised_training(monkeypatch, at_step=3)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_config(stick_root, tmp_path, "name=crashed"))
    assert load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")["step"] == 3
    monkeypatch.undo()
    trainer.train(tiny_config(stick_root, tmp_path, "name=crashed"), resume=True)
    straight = student_weights(tmp_path / "straight" / "checkpoints" / "last.pt")
    resumed = student_weights(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    steps = [json.loads(x)["step"] for x in (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]  # fmt: skip
    assert steps == list(range(1, 7))  # no duplicated records after the resume
    env = json.loads((tmp_path / "crashed" / "environment.json").read_text())
    assert [sitting["step"] for sitting in env["resumed"]] == [3]  # the start's environment stays on top
    assert env["resumed"][0]["git_revision"] and env["resumed"][0]["versions"] == env["versions"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["trs", "dual"])
def test_resume_mid_semi_supervised_training_is_exact(stick_root, tmp_path, monkeypatch, method):
    extra = ["method.reviewer.policy=best", "train.eval_every=2", "train.checkpoint_every=2", "train.steps=6",
             "data.labeled_fraction=0.5", "data.split_mode=random"]  # fmt: skip
    trainer.train(
        tiny_semi_config(stick_root, tmp_path, method, "name=straight", "train.keep_checkpoints=true", *extra)
    )
    kept = sorted((tmp_path / "straight" / "checkpoints").glob("step_*.pt"))
    # each 'last' kept, not the latest thrice
    assert [(path.name, load_checkpoint(path)["step"]) for path in kept] == [
        ("step_000002.pt", 2), ("step_000004.pt", 4), ("step_000006.pt", 6)
    ]  # fmt: skip

    def crash(self, step):
        raise KeyboardInterrupt

    cls = type(
        build.build_method(
            tiny_semi_config(stick_root, tmp_path, method), build.build_model(load_config(TINY))
        )
    )
    original = cls.after_optimizer_step
    monkeypatch.setattr(
        cls,
        "after_optimizer_step",
        lambda self, step: crash(self, step) if step == 4 else original(self, step),
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_semi_config(stick_root, tmp_path, method, "name=crashed", *extra))
    monkeypatch.setattr(cls, "after_optimizer_step", original)
    crashed = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert crashed["step"] == 4  # the resume below starts mid-run, not from scratch
    # keeping checkpoints may be switched on at a resume: it keeps the step it resumes from, then each new one
    resumed = tiny_semi_config(
        stick_root, tmp_path, method, "name=crashed", "train.keep_checkpoints=true", *extra
    )
    trainer.train(resumed, resume=True)
    crashed_kept = sorted((tmp_path / "crashed" / "checkpoints").glob("step_*.pt"))
    assert [path.name for path in crashed_kept] == ["step_000004.pt", "step_000006.pt"]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert_same_tree(a["method"], b["method"])
    assert_same_tree(load_checkpoint(kept[1])["method"], load_checkpoint(crashed_kept[0])["method"])
    assert a["scheduler"] == b["scheduler"]
    if method == "trs":
        assert a["method"]["step"] == 6 and len(a["method"]["reviewer"]["networks"]) >= 1
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if json.loads(x)["kind"] == "train"] == list(range(1, 7))
    if method == "trs":  # the kept steps are what benchmarks/reviewer_candidates.py studies
        import reviewer_candidates

        out = tmp_path / "candidates.json"
        monkeypatch.setattr(sys, "argv", ["reviewer_candidates.py", *map(str, kept), "--out", str(out)])
        reviewer_candidates.main()
        (record,) = json.loads(out.read_text())
        assert record["steps"] == [2, 4, 6]  # burn-in ends at step 2: every kept teacher is a trained one
        sources = record["sources"]
        assert {
            "teacher",
            "teacher_flip",
            "student",
            "teacher_step_2",
            "ensemble_3",
            "weight_average_3",
        } <= set(sources)
        assert (
            sources["teacher"]["right_where_teacher_wrong"]
            == sources["teacher"]["wrong_where_teacher_right"]
            == 0
        )
        for row in sources.values():  # PCK = the teacher's + what it adds - what it loses
            assert row["pck"] == pytest.approx(
                sources["teacher"]["pck"]
                + row["right_where_teacher_wrong"]
                - row["wrong_where_teacher_right"]
            )


def assert_same_tree(a, b, path="method"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_a_resume_inside_the_burn_in_is_exact(stick_root, tmp_path, monkeypatch):
    """The unlabelled stream of a run resumed before its burn-in ends starts where the method first reads it."""
    from trspose.methods.trs import TeacherReviewerStudent

    extra = ["train.steps=4", "train.checkpoint_every=1", "train.eval_every=0", "method.burn_in_steps=2"]
    trainer.train(tiny_semi_config(stick_root, tmp_path, "mean_teacher", "name=straight", *extra))
    interrupt_after_step(monkeypatch, TeacherReviewerStudent, 1)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_semi_config(stick_root, tmp_path, "mean_teacher", "name=crashed", *extra))
    monkeypatch.undo()
    assert (
        load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")["step"] == 1
    )  # inside the burn-in
    trainer.train(tiny_semi_config(stick_root, tmp_path, "mean_teacher", "name=crashed", *extra), resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert_same_tree(a["method"], b["method"])


def test_burn_in_steps_load_no_unlabeled_people_and_the_first_batch_after_is_unchanged(
    stick_root, tmp_path, monkeypatch
):
    from trspose.data.unlabeled import UnlabeledViewsDataset
    from trspose.methods.trs import TeacherReviewerStudent

    read, given = [], {}
    original_item, original_step = UnlabeledViewsDataset.__getitem__, TeacherReviewerStudent.training_step
    monkeypatch.setattr(UnlabeledViewsDataset, "__getitem__",
                        lambda self, key: read.append(key[1]) or original_item(self, key))  # fmt: skip
    monkeypatch.setattr(TeacherReviewerStudent, "training_step", lambda self, labeled, unlabeled, step: (
        given.setdefault(step, None if unlabeled is None else unlabeled.ann_id.tolist()),
        original_step(self, labeled, unlabeled, step))[1])  # fmt: skip
    cfg = tiny_semi_config(stick_root, tmp_path, "mean_teacher", "train.steps=4", "train.eval_every=0")
    trainer.train(cfg)
    # burn-in 2 steps, 4 people a step: the draws of steps 2 and 3 are positions 8 to 15, as when every step read
    assert read == list(range(8, 16))
    assert given[0] is None and given[1] is None and len(given[2]) == len(given[3]) == 4


def test_resume_refuses_a_changed_config_but_not_a_changed_worker_count(tmp_path):
    import yaml

    from trspose.config import config_to_dict
    from trspose.engine.run_folder import prepare_run_folder

    cfg = load_config(TINY, [f"output_dir={tmp_path}", "name=run"])
    run = prepare_run_folder(cfg, resume=False, overwrite=False)
    saved = config_to_dict(cfg)
    del saved["data"]["strong_view"]  # a run from a version without this section: defaults fill it in
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    faster = load_config(TINY, [f"output_dir={tmp_path}", "name=run", "data.workers=0", "eval.batch_size=7"])
    assert prepare_run_folder(faster, resume=True, overwrite=False) == run
    longer = load_config(TINY, [f"output_dir={tmp_path}", "name=run", "train.steps=99", "train.lr=0.5"])
    with pytest.raises(TrainingError) as error:
        prepare_run_folder(longer, resume=True, overwrite=False)
    message = str(error.value)
    assert (
        f"train.lr: {cfg.train.lr!r} -> 0.5" in message and f"train.steps: {cfg.train.steps} -> 99" in message
    )
    assert f"trspose train {run / 'config.yaml'} --resume" in message and "\n" not in message


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
    stick_root, tmp_path, monkeypatch
):
    from trspose.methods.base import StepOutput
    from trspose.methods.supervised import Supervised

    original = Supervised.training_step

    def nan_at_step_four(self, labeled, unlabeled, step):
        out = original(self, labeled, unlabeled, step)
        return StepOutput(out.loss * float("nan"), out.metrics) if step == 4 else out

    monkeypatch.setattr(Supervised, "training_step", nan_at_step_four)
    with pytest.raises(TrainingError, match="loss became nan at step 4"):
        trainer.train(tiny_config(stick_root, tmp_path))
    assert load_checkpoint(tmp_path / "tiny" / "checkpoints" / "last.pt")["step"] == 3
    assert not list((tmp_path / "tiny" / "checkpoints").glob("*.tmp"))


def test_cli_refuses_to_overwrite_a_run_and_reports_bad_input_in_one_line(stick_root, tmp_path, capsys):
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "train.steps=2"]
    assert main(args) == 0
    before = (tmp_path / "tiny" / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run folder") and "--overwrite" in err and "\n" not in err
    assert (tmp_path / "tiny" / "checkpoints" / "last.pt").read_bytes() == before
    assert main([*args, "train.nosuch=1"]) == 2
    assert "train.nosuch" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert (
        main(["train", str(TINY), f"data.root={tmp_path / 'nowhere'}", f"output_dir={tmp_path}", "name=x"])
        == 2
    )
    assert "nowhere" in capsys.readouterr().err


def test_predict_writes_results_and_overlays(stick_root, tmp_path):
    trainer.train(tiny_config(stick_root, tmp_path, "train.steps=2"))
    out = jobs.predict_images(tmp_path / "tiny" / "checkpoints" / "last.pt", [str(stick_root / "images" / "val")],
                              boxes=None, out_dir=tmp_path / "pred")  # fmt: skip
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 4 and all(len(r["keypoints"]) == 51 for r in results)
    assert len(list((out / "overlays").glob("*.png"))) == 4 and (out / "grid.png").is_file()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_teacher_reviewer_student_then_single_process_eval_agrees(
    stick_root, tmp_path
):
    """TRS under torchrun: only the student is DDP-wrapped; teacher, reviewer and every loss term work; the run
    writes one run folder (world size 2), and a single-process eval of its checkpoint gives the AP it logged."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
               "-m", "trspose.cli", "train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}",
               "name=ddp_trs", "train.steps=6", "train.eval_every=2", "method.name=trs", "method.burn_in_steps=2",
               "method.rampup_steps=2", "train.unlabeled_batch_size=2", "method.confidence_threshold=0.0",
               "method.mix.probability=1.0", "model.mfl_levels=[stage2,stage3]",
               "method.reviewer.policy=periodic", "method.reviewer.every=2", "method.joint_cutout.probability=1.0"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "ddp_trs"
    assert json.loads((run / "environment.json").read_text())["world_size"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in records if r["kind"] == "train"][-1]
    for key in ("loss/supervised", "loss/teacher", "loss/reviewer", "pseudo/kept_fraction"):
        value = last_train.get(key)  # present, and neither NaN (null) nor inf
        assert isinstance(value, float) and math.isfinite(value), key
    state = load_checkpoint(run / "checkpoints" / "last.pt")["method"]
    assert state["step"] == 6 and len(state["reviewer"]["networks"]) == 1
    student, teacher = state["trainable"], state["teacher"]
    assert set(teacher) == {k.removeprefix("student.") for k in student}  # unwrapped names, no 'module.'
    final = json.loads((run / "final_metrics.json").read_text())
    single = jobs.evaluate_checkpoint(run / "checkpoints" / "last.pt")
    assert single["AP"] == pytest.approx(final["val/AP"], abs=1e-9)


def test_preview_training_draws_the_fed_crops_with_targets(stick_root, tmp_path, capsys):
    common = [str(TINY), f"data.root={stick_root}", "data.input_size=[64,64]"]
    assert main(["preview-training", *common, "--out", str(tmp_path / "sup"), "--num", "4"]) == 0
    assert sorted(p.name for p in (tmp_path / "sup").iterdir()) == ["labeled.png"]  # supervised: no views
    semi = ["method.name=trs", "method.mix.probability=1.0", "method.confidence_threshold=0.0"]
    assert main(["preview-training", *common, *semi, "--out", str(tmp_path / "trs"), "--num", "4"]) == 0
    import cv2

    labeled = cv2.imread(str(tmp_path / "trs" / "labeled.png"))
    unlabeled = cv2.imread(str(tmp_path / "trs" / "unlabeled.png"))
    # 4 crops of 64x64 drawn 3x in a row of 8 columns
    assert labeled.shape[:2] == (3 * 64, 8 * 3 * 64 + 7 * 2)
    assert unlabeled.shape[:2] == (2 * 3 * 64 + 2, 6 * 3 * 64 + 5 * 2)  # 4 people x 3 panels, 6 columns
    assert "unlabeled.png" in capsys.readouterr().out


def test_preview_heatmaps_sit_under_their_keypoints():
    from trspose.apps.training_preview import ZOOM, _zoom_points, enlarge_heatmap
    from trspose.data.codec import HeatmapCodec

    codec = HeatmapCodec(input_size=(64, 48), heatmap_size=(16, 12), sigma=2.0)
    keypoints = np.zeros((17, 3))
    keypoints[0] = [20.0, 36.0, 2]
    heatmap = codec.encode(keypoints)[0][0]  # (16, 12), peak at heatmap (5, 9)
    big = enlarge_heatmap(heatmap, (64 * ZOOM, 48 * ZOOM))
    y, x = np.unravel_index(big.argmax(), big.shape)
    expected = _zoom_points(keypoints)[0, :2]
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1


def test_a_resume_without_the_starts_environment_record_says_so(tmp_path):
    from trspose.engine.run_folder import note_resumed_environment

    note_resumed_environment(tmp_path, 250, torch.device("cpu"), 1)  # environment.json is missing
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["unknown_start"] is True and env["world_size"] == 1  # readers of the top level still work
    assert [sitting["step"] for sitting in env["resumed"]] == [250]
    note_resumed_environment(tmp_path, 500, torch.device("cpu"), 1)
    env = json.loads((tmp_path / "environment.json").read_text())
    assert [sitting["step"] for sitting in env["resumed"]] == [250, 500] and env["unknown_start"] is True


def test_a_resume_in_another_precision_is_recorded_and_said(tmp_path, caplog):
    from trspose.engine.run_folder import note_resumed_environment

    (tmp_path / "environment.json").write_text(json.dumps({"device": "cpu", "precision": "float32"}))
    with caplog.at_level("WARNING", logger="trspose.engine.run_folder"):
        note_resumed_environment(tmp_path, 250, torch.device("cpu"), 1, "bf16 autocast")
    assert "resuming at step 250 in bf16 autocast; the previous sitting trained in float32" in caplog.text
    record = json.loads((tmp_path / "environment.json").read_text())
    assert record["precision"] == "float32" and record["resumed"][-1]["precision"] == "bf16 autocast"


def test_the_recorded_revision_is_dirty_for_changed_code_not_for_new_benchmark_records(tmp_path):
    from trspose.engine.run_folder import git_revision

    def git(*args):
        identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
        return subprocess.run(
            ["git", *identity, *args], cwd=tmp_path, check=True, capture_output=True, text=True
        )

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "rows.json").write_text("[]\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD").stdout.strip()
    src = tmp_path / "src"  # asked from a subfolder, as the package asks from its own
    assert git_revision(src) == head
    (tmp_path / "benchmarks" / "results" / "rows.json").write_text('[{"ap": 14.3}]\n')
    (tmp_path / "benchmarks" / "results" / "curves.png").write_bytes(b"png")
    assert git_revision(src) == head
    (tmp_path / "src" / "model.py").write_text("x = 2\n")
    assert git_revision(src) == head + "+dirty"
    git("checkout", "-q", "src/model.py")
    (tmp_path / "benchmarks" / "new_row.py").write_text("")
    assert git_revision(src) == head + "+dirty"
