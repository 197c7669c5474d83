"""Bad input through the CLI and the builders: bad files stop with one line before anything runs, and the overlays
say what they show. An untrained checkpoint and a stand-in model that predicts the ground truth keep these fast
(tests/cli_cases.py); the scoring itself is tested in tests/evaluation/test_scoring.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.cli_cases import (
    K,
    oracle,
    run_cli,
    val_annotations,
)  # fmt: skip
from tests.tiny_runs import TINY, tiny_semi_config
from trspose.apps import jobs
from trspose.engine import build
from trspose.engine.distributed import DistributedContext
from trspose.errors import ConfigError
from trspose.evaluation import inference


def test_a_best_reviewer_without_a_labeled_hold_out_is_a_config_error(root, tmp_path):
    """TRS's default reviewer is chosen on the hold-out: without one it would silently never be used."""
    message = r"policy=best scores the teacher on the labelled hold-out, .* none"
    for holdout in ("data.holdout_fraction=0", "data.num_labeled=2"):  # tiny's 0.2 of 2 people rounds to none
        cfg = tiny_semi_config(root, tmp_path, "trs", holdout)
        with pytest.raises(ConfigError, match=message):
            build.build_training_run(cfg, None, DistributedContext())
    slow_ema = tiny_semi_config(
        root, tmp_path, "trs", "data.num_labeled=2", "method.reviewer.policy=slow_ema"
    )
    assert build.build_training_run(slow_ema, None, DistributedContext()).holdout is None


def broken_copies(root: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Dataset copies, each with one problem in its validation split, and the message each must give."""
    cases = {}

    def copy_with(name, change_annotations=None, change_images=None):
        target = tmp_path / name
        shutil.copytree(root, target)
        if change_annotations is not None:
            path = target / "annotations" / "person_keypoints_val.json"
            data = json.loads(path.read_text())
            change_annotations(data)
            path.write_text(json.dumps(data).replace("123456.5", "NaN"))
        if change_images is not None:
            change_images(target / "images" / "val")
        return target

    def nan_keypoint(data):
        data["annotations"][1]["keypoints"][3] = 123456.5

    def no_flags(data):
        data["annotations"][2]["keypoints"][2::3] = [0] * K

    cases["nan"] = copy_with("nan", nan_keypoint), r"annotation id 10020: keypoints\[3\] is NaN"
    cases["num_keypoints"] = copy_with("flags", no_flags), "annotation id 10030: num_keypoints is 17 but 0"
    cases["categories"] = copy_with("nocat", lambda d: d.pop("categories")), "lacks 'categories'"
    cases["empty image"] = (
        copy_with("empty", change_images=lambda d: (d / "001002.jpg").write_bytes(b"")),
        r"001002.jpg: empty image file \(0 bytes\)",
    )
    return cases


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_validation_files_stop_train_before_the_first_step_and_eval_in_one_line(root, checkpoint, tmp_path,
                                                                                   capsys):  # fmt: skip
    """Cases 2-5: NaN keypoints trained into a non-finite loss blamed on the learning rate; a file without
    categories crashed in pycocotools after every training step; an empty image was a cv2.error traceback."""
    for name, (data_root, message) in broken_copies(root, tmp_path).items():
        out_dir = tmp_path / f"runs_{name}"
        code, _, err = run_cli(capsys, "train", TINY, f"data.root={data_root}", f"output_dir={out_dir}")
        assert code == 2 and re.search(message, one_error_line(err)), (name, err)
        assert not (out_dir / "tiny").exists(), name  # nothing trained, no run folder to --overwrite later
        code, _, err = run_cli(capsys, "eval", checkpoint, "--annotations",
                               data_root / "annotations" / "person_keypoints_val.json")  # fmt: skip
        assert code == 2 and re.search(message, one_error_line(err)), (name, err)


def test_non_image_files_named_in_an_annotation_file_are_one_line_errors(root, checkpoint, tmp_path, capsys):
    """Case 5: a zero-byte file crashed eval with a cv2.error; preview-dataset crashed with AttributeError."""
    data_root = tmp_path / "data"
    shutil.copytree(root, data_root)
    image = data_root / "images" / "val" / "001001.jpg"
    ann = data_root / "annotations" / "person_keypoints_val.json"
    for content, message in [(b"", r"001001.jpg: empty image file"),
                             (b"just some text", r"001001.jpg: not a readable image")]:  # fmt: skip
        image.write_bytes(content)
        code, _, err = run_cli(capsys, "eval", checkpoint, "--annotations", ann)
        assert code == 2 and re.search(message, one_error_line(err))
        code, _, err = run_cli(capsys, "preview-dataset", data_root, "--out", tmp_path / "preview")
        assert code == 2 and re.search(message, one_error_line(err))


def test_preview_dataset_on_truncated_json_or_a_folder_not_in_coco_layout(root, tmp_path, capsys):
    """Case 5: JSONDecodeError and FileNotFoundError tracebacks."""
    data_root = tmp_path / "data"
    shutil.copytree(root, data_root)
    ann = data_root / "annotations" / "person_keypoints_val.json"
    ann.write_text(ann.read_text()[:150])
    code, _, err = run_cli(capsys, "preview-dataset", data_root, "--out", tmp_path / "preview")
    assert code == 2 and "person_keypoints_val.json: malformed JSON at line 1" in one_error_line(err)
    (tmp_path / "photos").mkdir()
    code, _, err = run_cli(capsys, "preview-dataset", tmp_path / "photos", "--out", tmp_path / "preview")
    assert code == 2 and "photos: not a dataset in COCO layout" in one_error_line(err)
    code, out, err = run_cli(capsys, "preview-dataset", root, "--out", tmp_path / "preview")
    assert code == 0, err
    assert "pose_modes" not in out  # real (non-synthetic) data has no pose modes: no '?' row


def test_eval_overlays_print_the_number_drawn_and_say_when_nothing_is_above_the_threshold(
    root, checkpoint, tmp_path, capsys, monkeypatch
):
    """'predicted skeletons on 12 validation images' was printed for a set of 6; blank overlays had no hint."""
    monkeypatch.setattr(inference, "predict", oracle(val_annotations(root), score=0.1))
    code, out, err = run_cli(capsys, "eval", checkpoint, "--overlays", tmp_path / "overlays")
    assert code == 0, err
    assert "predicted skeletons on 6 validation images" in out
    assert "note: every predicted keypoint scores at most 0.10, not above the drawing threshold 0.3" in out
    jobs.predict_images(checkpoint, [str(root / "images" / "val")], boxes=None, out_dir=tmp_path / "pred",
                        score_threshold=0.05)  # fmt: skip
    assert "note:" not in capsys.readouterr().out  # 0.1 is drawn at threshold 0.05
    jobs.predict_images(checkpoint, [str(root / "images" / "val")], boxes=None, out_dir=tmp_path / "pred")
    assert "lower --score-threshold to see them" in capsys.readouterr().out


def test_predict_accepts_a_dataset_wide_detections_file_for_some_of_its_images(
    root, checkpoint, tmp_path, capsys
):
    """It refused a detections file naming images not given on the command line."""
    names = sorted(p.name for p in (root / "images" / "val").iterdir())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({name: [[5, 5, 40, 60, 0.9]] for name in names}))
    one = root / "images" / "val" / names[0]
    out = jobs.predict_images(checkpoint, [str(one)], boxes=str(boxes), out_dir=tmp_path / "pred")
    results = json.loads((out / "predictions.json").read_text())
    assert [r["file_name"] for r in results] == [names[0]]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a readable image"), (b"GIF89a not really", "not a readable image"),
     (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image")],
)  # fmt: skip
def test_predict_on_bytes_that_are_no_image_is_one_line(checkpoint, tmp_path, capsys, content, message):
    (tmp_path / "photo.png").write_bytes(content)
    code, _, err = run_cli(capsys, "predict", checkpoint, tmp_path / "photo.png", "--out", tmp_path / "out")
    assert code == 2 and "photo.png: " + message in one_error_line(err)
