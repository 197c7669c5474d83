"""The synthetic people generator: geometry of keypoints and visibility, COCO output, cache and errors."""

import json
import shutil

import numpy as np
import pytest

from trspose.data.keypoints import COCO17
from trspose.errors import DataError

pytest.importorskip("anny")
pytest.importorskip("warp")

from trspose.data.synthetic import (  # noqa: E402
    SIZES,
    annotate,
    compose,
    dataset,
    ensure_dataset,
    generate,
    objects,
    poses,
    render,
    scene,
)

K = {name: i for i, name in enumerate(COCO17.names)}


def neutral_pose(n: int, **overrides) -> poses.PoseAngles:
    """All joint angles 0 (the rest A-pose), with some joints overridden (same value for both sides)."""
    angles = {k: np.zeros((n, 2) if k in poses.SIDED else n) for k in poses.STANDING}
    for key, value in overrides.items():
        angles[key][:] = value
    return poses.PoseAngles(modes=np.array(["standing"] * n), angles=angles)


def render_people(body, yaws, positions, eye=(0.0, -4.0, 1.1), boxes=(), all_points=False, **pose):
    """Posed people (facing -Y before `yaws`, degrees) at ground `positions`, seen from `eye` (288x384); their
    COCO keypoints, or with `all_points` every point the generator computes (``body.POINT_NAMES``)."""
    n = len(yaws)
    phenotypes = np.tile(body.phenotypes[:1] * 0 + [0.0, 0.7, 0.5, 0.5, 0.5, 0.5], (n, 1)).astype(np.float32)
    vertices, keypoints = compose._forward(body, neutral_pose(n, **pose), phenotypes)
    world_v, world_k = [], []
    for i, (yaw, (x, y)) in enumerate(zip(yaws, positions)):
        rotation = poses.axis_rotations(np.array([0.0, 0, 1]), np.array([yaw]))[0]
        offset = np.array([x, y, -(vertices[i] @ rotation.T)[:, 2].min()])
        world_v.append((vertices[i] @ rotation.T + offset).astype(np.float32))
        world_k.append((keypoints[i] @ rotation.T + offset).astype(np.float32))
    focal = 300.0
    intrinsics = np.array([[focal, 0, 192], [0, focal, 144], [0, 0, 1]])
    rotation, translation = scene.look_at(np.array(eye), np.array([0.0, 0.0, 0.9]), 0.0)
    camera = scene.Camera(rotation, translation, intrinsics, 288, 384)
    parked = [objects.CUBE_VERTICES * 1e-3 + objects.PARKED] * (objects.NUM_OBJECTS - len(boxes))
    mesh = render.scene_mesh(body, np.concatenate(world_v + list(boxes) + parked), n)
    hits = render.cast_image(mesh, camera, np.ones((288, 384), bool))
    pixels, flags = annotate.keypoint_visibility(body, mesh, camera, np.stack(world_k))
    kept = slice(None) if all_points else slice(len(COCO17.names))
    return hits, pixels[:, kept], flags[:, kept]


def test_front_view_left_shoulder_on_image_right(body_model):
    _, pixels, flags = render_people(body_model, [0.0], [(0.0, 0.0)])
    assert pixels[0, K["left_shoulder"], 0] > pixels[0, K["right_shoulder"], 0] + 10
    assert pixels[0, K["left_hip"], 0] > pixels[0, K["right_hip"], 0]
    assert (flags[0] == 2).all(), flags


def test_nose_projects_inside_the_head_silhouette(body_model):
    hits, pixels, _ = render_people(body_model, [0.0], [(0.0, 0.0)])
    x, y = np.round(pixels[0, K["nose"]]).astype(int)
    face = hits.face[y, x]
    assert face >= 0
    assert body_model.face_bone[face] == body_model.bone_index["head"]


def test_side_view_far_arm_is_occluded(body_model):
    # yaw 90: the person faces +X, the camera at -Y sees their right side; the left arm is the far one
    _, _, flags = render_people(body_model, [90.0], [(0.0, 0.0)], shoulder_abduction=-25)
    assert flags[0, K["left_shoulder"]] == 1 and flags[0, K["left_elbow"]] == 1
    assert flags[0, K["right_shoulder"]] == 2 and flags[0, K["right_elbow"]] == 2


def test_back_view_face_is_unlabeled(body_model):
    _, _, flags = render_people(body_model, [180.0], [(0.0, 0.0)])
    assert (flags[0, [K["nose"], K["left_eye"], K["right_eye"]]] == 0).all()
    assert (flags[0, K["left_shoulder"] :] == 2).all()


def test_person_behind_another_is_occluded(body_model):
    _, _, flags = render_people(body_model, [0.0, 0.0], [(0.0, 0.0), (0.05, 1.2)])
    assert (flags[0] == 2).all()
    assert (flags[1] == 1).sum() >= 8, flags[1]


def test_box_in_front_hides_the_legs(body_model):
    crate = objects.box_vertices(np.array([0.0, -1.2]), np.array([1.2, 0.4, 0.8]), 0.0)
    _, _, flags = render_people(body_model, [0.0], [(0.0, 0.0)], boxes=[crate])
    assert (flags[0, K["left_knee"] :] == 1).all(), flags
    assert (flags[0, : K["left_shoulder"]] == 2).all(), flags


def test_pose_sampler_covers_every_mode_within_ranges():
    rng = np.random.default_rng(0)
    modes = poses.sample_modes(rng, 2000)
    assert set(modes) == set(poses.MODES)
    angles = poses.sample_angles(rng, modes).angles
    assert (np.abs(angles["head_turn"]) <= 60).all()
    assert angles["knee"].min() >= 0 and angles["elbow"].min() >= 0
    squat = modes == "squatting"
    assert (angles["knee"][squat] >= 80).all()


@pytest.mark.slow
def test_people_never_intersect(body_model):
    from trspose.data.synthetic.collision import SelfIntersectionTest

    collision = SelfIntersectionTest(body_model)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        people = compose.pose_people(body_model, collision, rng, poses.sample_modes(rng, 4))
        _, vertices, _, _ = compose.place_people(rng, people)
        for a in range(len(vertices)):
            for b in range(a + 1, len(vertices)):
                gap = np.linalg.norm(vertices[a][::7, None, :2] - vertices[b][None, ::7, :2], axis=-1).min()
                assert gap > 0.03, (seed, a, b, gap)


def test_coco_files_load_and_follow_the_schema(tiny_dataset):
    from pycocotools.coco import COCO

    for split in ("train", "val"):
        path = tiny_dataset / "annotations" / f"person_keypoints_{split}.json"
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == SIZES["tiny"].count(split)
        assert coco.loadCats(1)[0] == COCO17.coco_category()
        for annotation in coco.loadAnns(coco.getAnnIds()):
            keypoints = np.array(annotation["keypoints"]).reshape(17, 3)
            assert annotation["iscrowd"] == 0 and annotation["area"] > 0
            assert annotation["num_keypoints"] == int((keypoints[:, 2] > 0).sum())
            assert set(np.unique(keypoints[:, 2])) <= {0, 1, 2}
            assert (keypoints[keypoints[:, 2] == 0, :2] == 0).all()
        for image in coco.loadImgs(coco.getImgIds()):
            assert (tiny_dataset / "images" / split / image["file_name"]).is_file()


def test_boxes_contain_visible_keypoints(tiny_dataset):
    data = json.loads((tiny_dataset / "annotations" / "person_keypoints_train.json").read_text())
    labeled = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    assert len(labeled) >= 10
    for annotation in labeled:
        x, y, w, h = annotation["bbox"]
        keypoints = np.array(annotation["keypoints"]).reshape(17, 3)
        visible = keypoints[keypoints[:, 2] == 2, :2]
        assert (visible[:, 0] >= x).all() and (visible[:, 0] <= x + w).all()
        assert (visible[:, 1] >= y).all() and (visible[:, 1] <= y + h).all()
        assert 0 <= x and 0 <= y and x + w <= 384 and y + h <= 288


@pytest.mark.slow
def test_same_output_for_any_worker_count(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "CHUNK", 2)
    spec = generate.SizeSpec(train=6, val=0)
    generate.generate_split(tmp_path, "train", spec, seed=0, workers=2, progress=False)
    ours = json.loads((tmp_path / "annotations" / "person_keypoints_train.json").read_text())
    reference = json.loads((tiny_dataset / "annotations" / "person_keypoints_train.json").read_text())
    assert ours["images"] == reference["images"][:6]
    assert ours["annotations"] == [a for a in reference["annotations"] if a["image_id"] <= 6]
    for image in ours["images"]:
        name = image["file_name"]
        ours_bytes = (tmp_path / "images" / "train" / name).read_bytes()
        assert ours_bytes == (tiny_dataset / "images" / "train" / name).read_bytes(), name


def test_second_call_reuses_the_dataset(tiny_dataset):
    manifest = dataset.read_manifest(tiny_dataset)
    assert manifest["generator_version"] == dataset.generator_version()
    assert manifest["splits"]["train"]["images"] == SIZES["tiny"].train
    before = (tiny_dataset / "manifest.json").stat().st_mtime_ns
    assert ensure_dataset("tiny", seed=0, root=tiny_dataset, progress=False) == tiny_dataset
    assert (tiny_dataset / "manifest.json").stat().st_mtime_ns == before


def test_version_change_invalidates_the_cache(tiny_dataset, monkeypatch):
    import trspose.data.synthetic as synthetic

    old_root = dataset.default_root("tiny", 0)
    assert dataset.folder_state(tiny_dataset, dataset.expected_identity("tiny", 0)) == "complete"
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert dataset.default_root("tiny", 0) != old_root
    assert dataset.folder_state(tiny_dataset, dataset.expected_identity("tiny", 0)) == "stale"
    with pytest.raises(DataError, match="--force"):
        ensure_dataset("tiny", seed=0, root=tiny_dataset, progress=False)


def test_unknown_size_lists_the_valid_ones():
    with pytest.raises(DataError, match="tiny, demo, default"):
        ensure_dataset("huge")


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="writable"):
        ensure_dataset("tiny", root=blocker / "dataset", progress=False)


def test_non_dataset_folder_is_never_overwritten(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    for force in (False, True):
        with pytest.raises(DataError, match="not a synthetic dataset"):
            ensure_dataset("tiny", root=tmp_path, force=force, progress=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_partial_dataset_without_manifest_is_not_taken_as_complete(tiny_dataset, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_dataset / "annotations", partial / "annotations")
    with pytest.raises(DataError, match="partial"):
        ensure_dataset("tiny", root=partial, progress=False)


def test_older_version_manifest_is_not_taken_as_complete(tiny_dataset, tmp_path):
    older = tmp_path / "older"
    shutil.copytree(tiny_dataset, older)
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["generator_version"] -= 1
    (older / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="--force"):
        ensure_dataset("tiny", root=older, progress=False)


def test_interrupted_generation_leaves_nothing_complete(tmp_path, monkeypatch):
    calls = []

    def interrupted(root, split, *args):
        (root / "images" / split).mkdir(parents=True)
        calls.append(split)
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "generate_split", interrupted)
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset("tiny", root=target, progress=False)
    assert calls == ["train"]
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_statistics_and_preview(tiny_dataset, tmp_path):
    from trspose.apps.drawing import preview_dataset
    from trspose.data.synthetic import dataset_statistics, format_statistics

    statistics = dataset_statistics(tiny_dataset)
    assert statistics["train"]["images"] == SIZES["tiny"].train
    assert sum(statistics["train"]["box_height_histogram"].values()) == statistics["train"]["instances"]
    assert sum(statistics["train"]["pose_modes"].values()) == statistics["train"]["instances"]
    assert f"| images | {SIZES['tiny'].train} | {SIZES['tiny'].val} |" in format_statistics(statistics)
    paths = preview_dataset(tiny_dataset, tmp_path, split="val", num_images=4)
    assert [p.name for p in paths] == ["preview_val_images.png", "preview_val_crops.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_crop_maps_the_box_centre_to_the_crop_centre():
    from trspose.apps.drawing import crop_person, draw_pose

    image = np.zeros((288, 384, 3), np.uint8)
    keypoints = np.zeros((17, 3))
    keypoints[0] = [150, 100, 2]  # the box centre
    keypoints[1] = [130, 60, 1]
    crop, mapped = crop_person(image, [130, 60, 40, 80], keypoints, (256, 192))
    assert crop.shape == (256, 192, 3)
    np.testing.assert_allclose(mapped[0, :2], [96, 128], atol=1e-6)
    assert mapped[1, 2] == 1
    drawn = draw_pose(image, keypoints, COCO17, box=[130, 60, 40, 80])
    assert drawn.shape == image.shape and drawn.any() and not image.any()


def test_mpii_points_sit_where_mpii_puts_them_on_a_person_facing_the_camera(body_model):
    from trspose.data.synthetic.body import POINT_NAMES

    _, pixels, flags = render_people(body_model, [0.0], [(0.0, 0.0)], all_points=True)
    point = {name: pixels[0, i] for i, name in enumerate(POINT_NAMES)}
    y = {name: p[1] for name, p in point.items()}  # image y grows downwards
    shoulders = (point["left_shoulder"] + point["right_shoulder"]) / 2
    assert y["head_top"] < y["left_eye"] < y["nose"] < y["upper_neck"] < y["thorax"] < shoulders[1]
    assert y["pelvis"] == pytest.approx((y["left_hip"] + y["right_hip"]) / 2, abs=1.0)
    for name in ("head_top", "upper_neck", "thorax", "pelvis"):  # on the body's midline, seen from the front
        assert point[name][0] == pytest.approx(192.0, abs=3.0)
    assert flags[0, POINT_NAMES.index("head_top")] == 2


def test_mpii16_annotations_share_the_images_and_joints_of_coco17(tiny_dataset, tiny_mpii_dataset):
    from trspose.data.keypoints import MPII16

    assert dataset.read_manifest(tiny_mpii_dataset)["keypoints"] == "mpii16"
    assert "keypoints" not in dataset.read_manifest(tiny_dataset)  # older coco17 folders stay complete
    assert (
        dataset.default_root("tiny", 0, "mpii16").name
        == f"synthetic-tiny-seed0-mpii16-v{dataset.generator_version()}"
    )
    for split in ("train", "val"):
        for image in (tiny_dataset / "images" / split).iterdir():
            assert (tiny_mpii_dataset / "images" / split / image.name).read_bytes() == image.read_bytes()
        coco = json.loads((tiny_dataset / "annotations" / f"person_keypoints_{split}.json").read_text())
        mpii = json.loads((tiny_mpii_dataset / "annotations" / f"person_keypoints_{split}.json").read_text())
        assert mpii["categories"][0]["keypoints"] == list(MPII16.names)
        assert [a["image_id"] for a in mpii["annotations"]] == [a["image_id"] for a in coco["annotations"]]
        ordered_up = 0
        labelled = [
            (a, b)
            for a, b in zip(coco["annotations"], mpii["annotations"])
            if min(a["num_keypoints"], b["num_keypoints"])
        ]
        for a, b in labelled:
            c, m = (np.array(x["keypoints"], float).reshape(-1, 3) for x in (a, b))
            for k, name in enumerate(MPII16.names):
                if name in COCO17.names:  # the shared joints: the same point and flag
                    np.testing.assert_array_equal(m[k], c[K[name]])
            top, neck, thorax = (m[MPII16.names.index(n)] for n in ("head_top", "upper_neck", "thorax"))
            for point in m[m[:, 2] > 0]:  # boxes grow to hold the visible points, of either layout
                assert b["bbox"][0] <= point[0] <= b["bbox"][0] + b["bbox"][2] + 1 or point[2] == 1
            if min(top[2], thorax[2]) > 0:  # the neck's top lies between the crown and the thorax
                ordered_up += np.linalg.norm(top[:2] - thorax[:2]) > np.linalg.norm(neck[:2] - thorax[:2])
        assert labelled and ordered_up >= 0.9 * len(labelled) - 1


def test_only_coco17_and_mpii16_are_rendered(tmp_path):
    with pytest.raises(DataError, match="no 'aic14' layout: choose one of coco17, mpii16"):
        ensure_dataset("tiny", root=tmp_path / "x", keypoints="aic14")
