"""When the machine fails rather than the input: a full disk, an image that breaks mid-run, a write OpenCV cannot
do, a video writer that loses frames, a temporary left by a killed write. Each ends in one line and exit 2 (or a
correct result), loses nothing that was there, and leaves nothing to clean up (trspose.io and its callers)."""

from __future__ import annotations

import errno
import json
import logging
import re
from pathlib import Path

import cv2
import pytest

from tests.interrupt import interrupt_supervised_training
from tests.stick_figures import write_stick_figure_dataset
from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.engine.checkpoint import load_checkpoint
from trspose.errors import WriteError
from trspose.io import TEMPORARY, remove_temporaries, write_json

FULL = r"No space left on device \(\d+ MB free\)"


def full_disk(monkeypatch, name_part: str = "", after: int = 0) -> None:
    """From the ``after + 1``-th write of a file whose name contains ``name_part`` on, the disk is full: half the
    bytes land, then the system refuses, as ``write`` does on a real full disk."""
    original, seen = Path.write_bytes, []

    def write_bytes(self, data):
        if name_part in self.name:
            seen.append(self)
            if len(seen) > after:
                original(self, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMPORARY.search(p.name)]


def last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    return err.splitlines()[-1] if err else ""


def test_a_full_disk_is_one_error_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    path = write_json({"run": 1}, tmp_path / "results.json")
    full_disk(monkeypatch)
    with pytest.raises(WriteError, match=rf"^cannot write {re.escape(str(path))}: {FULL}$"):
        write_json({"run": 2}, path)
    assert json.loads(path.read_text()) == {"run": 1} and [p.name for p in tmp_path.iterdir()] == [
        "results.json"
    ]


def test_training_on_a_full_disk_stops_in_one_line_keeps_the_last_checkpoint_and_resumes(
    stick_root, tmp_path, monkeypatch, capsys
):
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "train.steps=6"]
    full_disk(monkeypatch, "last", after=1)  # the checkpoint of step 3 is written, that of step 6 is not
    assert main(args) == 2
    checkpoints = tmp_path / "tiny" / "checkpoints"
    assert re.fullmatch(rf"error: cannot write {re.escape(str(checkpoints / 'last.pt'))}: {FULL}",
                        last_error_line(capsys))  # fmt: skip
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 3 and not temporaries(tmp_path)
    monkeypatch.undo()  # space freed
    assert main([*args, "--resume"]) == 0
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 6


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_predict_and_eval_overlays_on_a_full_disk_exit_2_not_0(command, trained, stick_root, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    out = tmp_path / "out"
    args = {
        "predict": ["predict", str(trained), str(stick_root / "images" / "val"), "--out", str(out)],
        "eval": ["eval", str(trained), "--overlays", str(out), "--results", str(tmp_path / "results.json")],
    }[command]
    full_disk(monkeypatch, ".png", after=1)  # the first overlay is written, the second is not
    assert main(args) == 2
    line = last_error_line(capsys)
    assert re.fullmatch(rf"error: cannot write {re.escape(str(out))}/overlays/\S+\.png: {FULL}", line), line
    assert len(list((out / "overlays").glob("*.png"))) == 1 and not temporaries(tmp_path)


def test_an_image_opencv_cannot_encode_is_one_line(trained, stick_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cv2, "imencode", lambda *args, **kwargs: (False, None))
    args = ["predict", str(trained), str(stick_root / "images" / "val"), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "OpenCV cannot encode" in last_error_line(capsys) and not list(tmp_path.rglob("*.png"))


def test_results_json_on_a_full_disk_is_one_line(trained, tmp_path, monkeypatch, capsys):
    full_disk(monkeypatch, "results")
    assert main(["eval", str(trained), "--results", str(tmp_path / "results.json")]) == 2
    assert re.search(rf"cannot write \S+results.json: {FULL}$", last_error_line(capsys))
    assert not list(tmp_path.iterdir())


def test_an_image_that_breaks_at_its_first_read_leaves_nothing_that_blocks_the_rerun(tmp_path, capsys):
    root = write_stick_figure_dataset(tmp_path / "data", num_train=4, num_val=2)
    image = root / "images" / "train" / "000002.jpg"
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])  # a JPEG truncated to half: found, but it cannot be decoded
    args = ["train", str(TINY), f"data.root={root}", f"output_dir={tmp_path / 'runs'}", "train.steps=2",
            "data.workers=2", "train.batch_size=4"]  # fmt: skip
    assert main(args) == 2
    line = last_error_line(capsys)
    assert line.startswith("error: ") and "000002.jpg" in line
    assert not (tmp_path / "runs" / "tiny").exists()  # no checkpoint was written: nothing to resume from
    image.write_bytes(good)
    assert main(args) == 0  # the corrected rerun needs no --overwrite


def test_a_run_folder_without_a_checkpoint_says_to_overwrite(stick_root, tmp_path, capsys):
    run = tmp_path / "tiny"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: tiny\n")  # what a run killed before its first checkpoint leaves
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "train.steps=2"]
    assert main(args) == 2
    line = last_error_line(capsys)
    assert "holds no checkpoint" in line and "--overwrite" in line
    assert main([*args, "--resume"]) == 2
    assert "start it again with --overwrite" in last_error_line(capsys)
    assert main([*args, "--overwrite"]) == 0


def test_a_resume_removes_the_temporary_of_a_checkpoint_write_that_was_killed(stick_root, tmp_path):
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "train.steps=2"]
    assert main(args) == 0
    checkpoints = tmp_path / "tiny" / "checkpoints"
    stale = checkpoints / "last.4242.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    assert temporaries(checkpoints) == [stale]
    assert main([*args, "--resume"]) == 0
    assert not temporaries(tmp_path) and load_checkpoint(checkpoints / "last.pt")["step"] == 2


def test_remove_temporaries_takes_only_the_temporaries_of_atomic_writes(tmp_path):
    names = ["last.123.tmp.pt", "model.9.tmp.json", "grid.77.tmp.png", "last.pt", "notes.tmp", "a.12x.tmp.pt"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = sorted(p.name for p in remove_temporaries(tmp_path))
    assert removed == ["grid.77.tmp.png", "last.123.tmp.pt", "model.9.tmp.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.12x.tmp.pt", "last.pt", "notes.tmp"]


def test_a_video_writer_that_loses_frames_is_one_line_and_leaves_no_video(trained, stick_root, tmp_path,
                                                                        monkeypatch, capsys):  # fmt: skip
    from tests.apps.test_video import _moving_person_video

    _moving_person_video(stick_root, tmp_path / "walk.mp4", frames=5)
    real = cv2.VideoWriter

    class Lossy:  # OpenCV's writer on a full disk: every call succeeds, frames go missing
        def __init__(self, *args):
            self.inner, self.calls = real(*args), 0

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return self.inner.isOpened()

        def write(self, frame):
            self.calls += 1
            if self.calls <= 3:
                self.inner.write(frame)

        def release(self):
            self.inner.release()

    monkeypatch.setattr(cv2, "VideoWriter", Lossy)
    out = tmp_path / "out"
    assert main(["predict", str(trained), str(tmp_path / "walk.mp4"), "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip().split("\n")[-1]  # its own line, not after a progress bar's "\r"
    assert line.startswith(
        f"error: cannot write {out / 'walk.skeletons.mp4'}: the finished file holds 3 of its 5"
    )
    assert not list(out.iterdir())  # no video, and no JSON or CSV of a prediction that did not finish


def test_a_file_read_twice_in_one_command_warns_once(tmp_path, caplog):
    from trspose.data.coco import load_coco_instances
    from trspose.data.keypoints import COCO17

    root = write_stick_figure_dataset(tmp_path / "data", num_train=2, num_val=1)
    path = root / "annotations" / "person_keypoints_train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [1.0, 1.0, 1.0, 1.0]  # its keypoints now lie far outside its box
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            load_coco_instances(path, root / "images" / "train", COCO17)
    assert caplog.text.count("far outside their bbox") == 1


def test_a_run_stopped_after_it_logged_keeps_its_folder_and_is_told_to_resume_or_overwrite(
    stick_root, tmp_path, monkeypatch, capsys
):
    interrupt_supervised_training(monkeypatch, at_step=2)
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "train.steps=6",
            "train.checkpoint_every=0", "train.eval_every=1", "train.select_on=holdout"]  # fmt: skip
    assert main(args) == 130
    run = tmp_path / "tiny"
    # no last.pt yet, but a best.pt and two steps of metrics: nothing of it is thrown away
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "metrics.jsonl").stat().st_size > 0
    assert main(args) == 2 and "--overwrite" in last_error_line(capsys)
