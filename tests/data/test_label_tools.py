"""Labels from DeepLabCut, SLEAP and Label Studio turned into a trspose dataset folder (data/label_tools.py,
``trspose convert``), trained on, and predicted with: an imaginary five-part animal in every format."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.tiny_runs import TINY
from trspose.cli import main
from trspose.data.label_tools import subject_box

sio = pytest.importorskip("sleap_io")
pd = pytest.importorskip("pandas")

PARTS = ["snout", "left_ear", "right_ear", "tail_base", "tail_tip"]  # not in alphabetical order, on purpose
COLOURS = [(0, 255, 255), (0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 0, 255)]
EDGES = [("snout", "left_ear"), ("snout", "right_ear"), ("snout", "tail_base"), ("tail_base", "tail_tip")]
SIZE = (96, 128)  # height, width


def animal(i: int) -> np.ndarray:
    """The animal's five points (x, y) in frame i: it walks right; in frame 1 its tail tip is not labelled."""
    points = np.array([[30, 40], [22, 32], [22, 48], [70, 40], [95, 44]], float) + [2 * i, 0]
    if i == 1:
        points[4] = np.nan
    return points


def draw(i: int) -> np.ndarray:
    image = np.full((*SIZE, 3), 40, np.uint8)
    for (x, y), colour in zip(animal(i), COLOURS):
        if np.isfinite(x):
            cv2.circle(image, (int(x), int(y)), 4, colour, -1)
    return image


def dlc_project(root: Path, frames: int = 6, video: Path | None = None) -> Path:
    """A DeepLabCut project: config.yaml (body parts, skeleton), labeled-data/walk/img00i.png and
    CollectedData_anna.csv (pandas MultiIndex columns scorer/bodyparts/coords and a three-level row index, as
    DeepLabCut >= 2.2 writes). With ``video``, config.yaml names it as the source of the labelled frames."""
    folder = root / "labeled-data" / "walk"
    folder.mkdir(parents=True)
    config = {"Task": "walk", "scorer": "anna", "bodyparts": PARTS, "skeleton": [list(e) for e in EDGES]}
    if video is not None:
        config["video_sets"] = {str(video): {"crop": f"0, {SIZE[1]}, 0, {SIZE[0]}"}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    index, rows = [], []
    for i in range(frames):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), draw(i))
        index.append(("labeled-data", "walk", f"img{i:03d}.png"))
        rows.append(animal(i).reshape(-1))
    columns = pd.MultiIndex.from_product(
        [["anna"], PARTS, ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index), columns=columns)
    table.to_csv(folder / "CollectedData_anna.csv")
    return folder / "CollectedData_anna.csv"


def sleap_labels(root: Path, frames: int = 6, predicted_only: bool = False) -> Path:
    """A SLEAP labels package written with sleap-io: the frames embedded, a skeleton with edges and a symmetry."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(frames):
        files.append(str(root / f"frame{i:03d}.png"))
        cv2.imwrite(files[-1], draw(i))
    skeleton = sio.Skeleton(list(PARTS), edges=list(EDGES), symmetries=[("right_ear", "left_ear")])
    video = sio.Video.from_filename(files)
    kind = sio.PredictedInstance if predicted_only else sio.Instance
    labelled = [sio.LabeledFrame(video=video, frame_idx=i, instances=[kind.from_numpy(animal(i), skeleton=skeleton)])
                for i in range(frames)]  # fmt: skip
    path = root / "walk.pkg.slp"
    sio.Labels(labelled).save(str(path), embed="user" if not predicted_only else False)
    for file in files:  # only the package holds the frames now
        Path(file).unlink()
    return path


def label_studio_export(root: Path, frames: int = 6) -> tuple[Path, Path]:
    """A Label Studio JSON export (percent coordinates, uploaded file names with their 8-hex prefix) and the folder
    of the original images."""
    images = root / "images"
    images.mkdir(parents=True)
    tasks = []
    for i in range(frames):
        cv2.imwrite(str(images / f"walk{i}.png"), draw(i))
        results = [{"id": f"p{i}{k}", "type": "keypointlabels", "from_name": "kp", "to_name": "image",
                    "original_width": SIZE[1], "original_height": SIZE[0],
                    "value": {"x": 100 * x / SIZE[1], "y": 100 * y / SIZE[0], "width": 0.5,
                              "keypointlabels": [PARTS[k]]}}
                   for k, (x, y) in enumerate(animal(i)) if np.isfinite(x)]  # fmt: skip
        tasks.append({"id": i + 1, "data": {"img": f"/data/upload/1/0a1b2c3{i}-walk{i}.png"},
                      "annotations": [{"id": i + 1, "result": results}]})  # fmt: skip
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path, images


def converted(tmp_path: Path, fmt: str) -> Path:
    out = tmp_path / "dataset"
    if fmt == "dlc":
        args = [str(dlc_project(tmp_path / "project"))]
    elif fmt == "sleap":
        args = [str(sleap_labels(tmp_path / "sleap"))]
    else:
        export, images = label_studio_export(tmp_path / "ls")
        args = [str(export), "--images", str(images)]
    assert main(["convert", *args, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("fmt", ["dlc", "sleap", "labelstudio"])
def test_a_labelling_tools_file_becomes_a_dataset_folder_with_the_animals_layout(fmt, tmp_path, capsys):
    out = converted(tmp_path, fmt)
    said = capsys.readouterr().out
    assert "5 train and 1 validation frames (6 subjects), 5 keypoints (snout, left_ear, right_ear" in said
    assert f"data.root={out} data.keypoints={out / 'keypoints.yaml'}" in said
    spec = yaml.safe_load((out / "keypoints.yaml").read_text())
    assert spec["names"] == PARTS and spec["flip_pairs"] == [["left_ear", "right_ear"]]  # left first
    assert spec["skeleton"] == (
        [list(e) for e in EDGES] if fmt != "labelstudio" else []
    )  # LS has no skeleton
    people = {}
    for split in ("train", "val"):
        coco = json.loads((out / "annotations" / f"person_keypoints_{split}.json").read_text())
        assert coco["categories"][0]["keypoints"] == PARTS
        files = {image["id"]: image for image in coco["images"]}
        for ann in coco["annotations"]:
            image = files[ann["image_id"]]
            assert (image["height"], image["width"]) == SIZE
            assert cv2.imread(str(out / "images" / split / image["file_name"])).shape[:2] == SIZE
            people[image["file_name"]] = np.array(ann["keypoints"], float).reshape(-1, 3)
            x, y, w, h = ann["bbox"]
            labelled = people[image["file_name"]][people[image["file_name"]][:, 2] > 0]
            assert (
                (labelled[:, 0] >= x).all()
                and (labelled[:, 0] <= x + w).all()
                and (labelled[:, 1] >= y).all()
            )
    assert len(people) == 6
    for name, keypoints in people.items():
        i = int("".join(c for c in Path(name).stem if c.isdigit())[-1])  # img003 / frame003 / walk3
        truth = animal(i)
        labelled = np.isfinite(truth).all(1)
        np.testing.assert_allclose(keypoints[labelled, :2], truth[labelled], atol=0.01)
        assert (keypoints[labelled, 2] == 2).all() and (keypoints[~labelled] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["dlc", "sleap"])
def test_converted_labels_train_predict_and_the_video_csv_names_the_body_parts(fmt, tmp_path, capsys):
    out = converted(tmp_path, fmt)
    run = ["train", str(TINY), f"data.root={out}", f"data.keypoints={out / 'keypoints.yaml'}",
           f"output_dir={tmp_path / 'runs'}", "train.steps=3", "data.holdout_fraction=0"]  # fmt: skip
    assert main(run) == 0
    checkpoint = tmp_path / "runs" / "tiny" / "checkpoints" / "last.pt"
    video = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (SIZE[1], SIZE[0]))
    for i in range(4):
        writer.write(draw(i))
    writer.release()
    assert main(["predict", str(checkpoint), str(video), "--out", str(tmp_path / "pred")]) == 0
    rows = (tmp_path / "pred" / "walk.csv").read_text().splitlines()
    assert rows[1].split(",")[2::3] == PARTS and len(rows) == 3 + 4


def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (SIZE[1], SIZE[0]))
    for i in range(frames):
        writer.write(draw(i % 6))
    writer.release()
    return path


def video_labels(path: Path, embed: bool) -> Path:
    """SLEAP labels of frames 0, 3 and 6 of a 10-frame walk.mp4 beside ``path``, the frames embedded or linked."""
    video = sio.Video.from_filename(str(write_video(path.parent / "walk.mp4", 10)))
    skeleton = sio.Skeleton(list(PARTS))
    labelled = [sio.LabeledFrame(video=video, frame_idx=i, instances=[sio.Instance.from_numpy(animal(i), skeleton=skeleton)])
                for i in (0, 3, 6)]  # fmt: skip
    sio.Labels(labelled).save(str(path), embed="user" if embed else False)
    return path


def test_unlabelled_frames_come_from_a_sleap_video_and_skip_its_labelled_frames(tmp_path, capsys):
    source = video_labels(tmp_path / "walk.slp", embed=False)
    out = tmp_path / "dataset"
    assert main(["convert", str(source), "--out", str(out), "--unlabeled-frames", "4"]) == 0
    assert "4 unlabelled frames in images/unlabeled" in capsys.readouterr().out
    names = sorted(p.name for p in (out / "images" / "unlabeled").iterdir())
    assert len(names) == 4 and not {"walk_000000.png", "walk_000003.png", "walk_000006.png"} & set(names)
    train = sorted(p.name for p in (out / "images" / "train").iterdir())
    assert set(train) < {
        "walk_000000.png",
        "walk_000003.png",
        "walk_000006.png",
    }  # frames decoded from the video


def test_unlabelled_frames_come_from_the_source_video_deeplabcuts_config_names(tmp_path, capsys):
    video = (
        write_video(tmp_path / "videos" / "walk.mp4", 10) if (tmp_path / "videos").mkdir() is None else None
    )
    out = tmp_path / "dataset"
    source = dlc_project(tmp_path / "project", video=video)  # labelled: img000-img005, frames 0-5 of walk.mp4
    assert main(["convert", str(source), "--out", str(out), "--unlabeled-frames", "4"]) == 0
    assert sorted(p.name for p in (out / "images" / "unlabeled").iterdir()) == [
        f"walk_{i:06d}.png" for i in (6, 7, 8, 9)
    ]
    capsys.readouterr()
    assert (
        main(
            [
                "convert",
                str(dlc_project(tmp_path / "other")),
                "--out",
                str(tmp_path / "x"),
                "--unlabeled-frames",
                "4",
            ]
        )
        == 2
    )
    assert "--unlabeled-frames: the labels link to no video file that can be read" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_box_holds_the_labelled_points_with_a_margin_inside_the_image():
    points = np.array([[10.0, 20.0], [50.0, 60.0], [np.nan, np.nan]])
    assert subject_box(points, 100, 100) == [6.0, 16.0, 48.0, 48.0]  # 10 % of 40 px each way
    assert subject_box(np.array([[1.0, 99.0]]), 100, 100) == [0.0, 95.0, 5.0, 5.0]  # clipped, at least 4 px


def bad_dlc_csv(tmp_path: Path) -> list[str]:
    path = dlc_project(tmp_path / "project")
    text = path.read_text().splitlines()
    cells = [row.split(",") for row in text]
    for row in cells:
        del row[-1]  # tail_tip's y column
    path.write_text("\n".join(",".join(row) for row in cells) + "\n")
    return [str(path)]


@pytest.mark.parametrize(
    "make, message",
    [
        (bad_dlc_csv, "CollectedData_anna.csv: body part 'tail_tip' has no y column; a DeepLabCut CSV has an x "
                      "and a y column for every body part"),
        (lambda tmp: [str(sleap_labels(tmp / "sleap", predicted_only=True))],
         "walk.pkg.slp: has no labelled frames (no user-labelled instance with a point); label some frames first "
         "(predictions do not count)"),
        (lambda tmp: [str(label_studio_export(tmp / "ls")[0])],
         "the labelled image /data/upload/1/0a1b2c30-walk0.png is not found beside the labels; pass the folder "
         "that holds them with --images"),
        (lambda tmp: [str(dlc_project(tmp / "project")), "--format", "sleap"], "CollectedData_anna.csv: cannot "
         "read it as a SLEAP .slp file"),
    ],
)  # fmt: skip
def test_bad_labels_are_one_line_naming_the_file_and_nothing_is_written(make, message, tmp_path, capsys):
    args = make(tmp_path)
    capsys.readouterr()
    assert main(["convert", *args, "--out", str(tmp_path / "dataset")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "dataset").exists() and not list(tmp_path.glob(".dataset.partial-*"))


def test_an_output_folder_that_is_not_empty_is_never_touched(tmp_path, capsys):
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["convert", str(dlc_project(tmp_path / "project")), "--out", str(out)]) == 2
    assert f"error: {out} exists and is not empty: choose a new output folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_missing_deeplabcut_image_is_named_rather_than_shifting_the_rows_after_it(tmp_path, capsys):
    source = dlc_project(tmp_path / "project")
    (source.parent / "img002.png").unlink()
    assert main(["convert", str(source), "--out", str(tmp_path / "dataset")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: ")
        and "the labelled image labeled-data/walk/img002.png is not in the project" in err
    )
    assert not (tmp_path / "dataset").exists()


def test_a_multi_animal_project_gives_one_subject_per_animal_and_leaves_unique_parts_out(tmp_path, capsys):
    folder = tmp_path / "project" / "labeled-data" / "walk"
    folder.mkdir(parents=True)
    columns = pd.MultiIndex.from_tuples(
        [(a, p, c) for a in ("a1", "a2") for p in PARTS for c in "xy"]
        + [("single", "led", "x"), ("single", "led", "y")]
    )
    rows = []
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), draw(i))
        rows.append([*animal(i).reshape(-1), *(animal(i) + [0, 30]).reshape(-1), 5.0, 5.0])
    index = pd.MultiIndex.from_tuples([("labeled-data", "walk", f"img{i:03d}.png") for i in range(3)])
    table = pd.DataFrame(rows, index=index, columns=columns)
    table.columns = pd.MultiIndex.from_tuples([("anna", *c) for c in columns],
                                              names=["scorer", "individuals", "bodyparts", "coords"])  # fmt: skip
    table.to_csv(folder / "CollectedData_anna.csv")
    out = tmp_path / "dataset"
    assert main(["convert", str(folder / "CollectedData_anna.csv"), "--out", str(out)]) == 0
    assert (
        "(6 subjects), 5 keypoints (snout, left_ear" in capsys.readouterr().out
    )  # 2 animals x 3 frames, no led
    coco = json.loads((out / "annotations" / "person_keypoints_train.json").read_text())
    assert coco["categories"][0]["keypoints"] == PARTS and all(
        a["num_keypoints"] >= 4 for a in coco["annotations"]
    )


def test_a_label_studio_export_with_tasks_nobody_annotated_converts_the_annotated_ones(tmp_path, capsys):
    export, images = label_studio_export(tmp_path / "ls")
    tasks = json.loads(export.read_text())
    tasks.append({"id": 99, "data": {"img": "/data/upload/1/0a1b2c3d-never.png"}, "annotations": []})
    export.write_text(json.dumps(tasks))
    assert main(["convert", str(export), "--images", str(images), "--out", str(tmp_path / "dataset")]) == 0
    assert "5 train and 1 validation frames (6 subjects)" in capsys.readouterr().out


def test_two_frames_give_one_to_train_and_one_to_validate_whatever_the_fraction(tmp_path, capsys):
    source = dlc_project(tmp_path / "project", frames=2)
    assert main(["convert", str(source), "--out", str(tmp_path / "dataset"), "--val-fraction", "0.75"]) == 0
    assert "1 train and 1 validation frames" in capsys.readouterr().out


def test_unlabelled_frames_of_a_sleap_package_come_from_its_source_video(tmp_path, capsys):
    package = video_labels(tmp_path / "walk.pkg.slp", embed=True)
    out = tmp_path / "dataset"
    assert main(["convert", str(package), "--out", str(out), "--unlabeled-frames", "7"]) == 0
    names = sorted(p.name for p in (out / "images" / "unlabeled").iterdir())
    assert names == [f"walk_{i:06d}.png" for i in (1, 2, 4, 5, 7, 8, 9)]
