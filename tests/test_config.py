from pathlib import Path

import pytest

from tests.tiny_runs import TINY, tiny_semi_config
from trspose.cli import main
from trspose.config import (
    ExperimentConfig,
    check_training_schedule,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    load_config,
)
from trspose.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_defaults_and_dotted_overrides():
    cfg = load_config(
        overrides=["train.steps=12", "data.input_size=[64,32]", "model.mfl_levels=[stage2,stage3]"]
    )
    assert cfg.train.steps == 12
    assert cfg.data.input_size == (64, 32)
    assert cfg.model.mfl_levels == ["stage2", "stage3"]
    assert cfg.train.lr == ExperimentConfig().train.lr


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert load_config(overrides=["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="train.steps"):
        load_config(overrides=["train.steps=1.5"])


def test_exponent_without_dot_is_a_float(tmp_path):
    """PyYAML (YAML 1.1) reads 3e-3 as a string; a float key takes it as the number people mean."""
    assert load_config(overrides=["train.lr=3e-3"]).train.lr == 0.003
    assert load_config(overrides=["train.lr=-2E+1"]).train.lr == -20.0
    (tmp_path / "c.yaml").write_text("train:\n  lr: 1e-4\n")
    assert load_config(tmp_path / "c.yaml").train.lr == 0.0001
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_config(overrides=["train.lr=e-3"])
    for bad in ("1e400", ".nan", ".inf"):
        with pytest.raises(ConfigError, match=r"train\.lr.*finite"):
            load_config(overrides=[f"train.lr={bad}"])


def test_config_round_trips_and_old_dicts_load():
    import yaml

    from trspose.config import config_from_dict

    cfg = load_config(
        overrides=["data.strong_view.blur_sigma=[0.2,0.9]", "method.confidence_keep_fraction=0.7"]
    )
    assert load_config_text(dump_yaml(cfg)) == cfg  # tuples survive YAML as lists and come back as tuples
    old = config_to_dict(cfg)
    for section, key in (
        ("data", "strong_view"),
        ("data", "weak_view"),
        ("method", "confidence_keep_fraction"),
    ):
        del old[section][key]  # a checkpoint from before these keys
    restored = config_from_dict(yaml.safe_load(yaml.safe_dump(old)))
    assert (
        restored.data.strong_view.blur_sigma == (0.1, 2.0) and restored.method.confidence_keep_fraction == 1.0
    )
    assert restored.data.weak_view.rotation_deg == 10.0


def test_moved_keys_load_from_their_old_place_with_a_note(tmp_path, capsys):
    """method.{unlabeled_batch_size,unlabeled_box_jitter,weak_view,strong_view} moved to train / data."""
    from trspose.config import config_from_dict

    path = tmp_path / "old.yaml"
    path.write_text(
        "method:\n  name: trs\n  unlabeled_batch_size: 8\n  strong_view:\n    blur_sigma: [0.1, 0.5]\n"
    )
    cfg = load_config(path, ["method.unlabeled_box_jitter=0.1", "method.weak_view.flip_prob=0.0"])
    assert cfg.train.unlabeled_batch_size == 8 and cfg.data.strong_view.blur_sigma == (0.1, 0.5)
    assert cfg.data.unlabeled_box_jitter == 0.1 and cfg.data.weak_view.flip_prob == 0.0
    assert cfg.data.weak_view.rotation_deg == 10.0  # a partial old section keeps the other defaults
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 4 and f"'method.strong_view' ({path}) is now 'data.strong_view'" in notes[1]
    # an old checkpoint's config: the same values, silently
    old = config_to_dict(load_config(overrides=["train.unlabeled_batch_size=5"]))
    old["method"]["unlabeled_batch_size"] = old["train"].pop("unlabeled_batch_size")
    old["method"]["strong_view"] = old["data"].pop("strong_view")
    assert config_from_dict(old).train.unlabeled_batch_size == 5
    assert capsys.readouterr().err == ""
    # both spellings in one place: which one was meant is unknown
    with pytest.raises(
        ConfigError, match="'method.weak_view' is the old spelling of 'data.weak_view', and both"
    ):
        load_config(overrides=["method.weak_view.flip_prob=0.0", "data.weak_view.flip_prob=0.5"])


def test_the_labeled_augmentation_is_a_view_section_and_its_old_flat_keys_still_load(capsys, tmp_path):
    cfg = load_config(overrides=["data.labeled_view.shift_factor=0.1", "data.labeled_view.color_jitter=0.2"])
    assert cfg.data.labeled_view.shift_factor == 0.1 and cfg.data.labeled_view.color_jitter == 0.2
    assert capsys.readouterr().err == ""
    old = tmp_path / "old.yaml"
    old.write_text("data:\n  rotation_deg: 25\n  flip_prob: 0.0\n")
    cfg = load_config(old, ["data.scale_factor=0.2"])
    assert (cfg.data.labeled_view.rotation_deg, cfg.data.labeled_view.flip_prob) == (25.0, 0.0)
    assert cfg.data.labeled_view.scale_factor == 0.2 and cfg.data.labeled_view.rotation_prob == 0.6
    notes = capsys.readouterr().err.splitlines()
    assert (
        len(notes) == 3
        and "'data.rotation_deg' (" in notes[0]
        and "is now 'data.labeled_view.rotation_deg'" in notes[0]
    )
    # an older run's resolved config (flat keys) is the same config as its new spelling, silently
    flat = config_to_dict(load_config(overrides=["data.labeled_view.rotation_deg=25"]))
    view = flat["data"].pop("labeled_view")
    flat["data"].update({k: view[k] for k in ("scale_factor", "rotation_deg", "rotation_prob", "flip_prob",
                                              "half_body_prob")})  # fmt: skip
    assert config_from_dict(flat) == load_config(overrides=["data.labeled_view.rotation_deg=25"])
    assert capsys.readouterr().err == ""


def test_choices_are_checked_by_their_type():
    with pytest.raises(
        ConfigError, match=r"'method.name' must be one of supervised, mean_teacher, dual, trs; got 'fixmatch'"
    ):
        load_config(overrides=["method.name=fixmatch"])
    with pytest.raises(
        ConfigError, match=r"'method.reviewer.policy' must be one of best, periodic, slow_ema, memory, none"
    ):
        load_config(overrides=["method.reviewer.policy=latest"])
    with pytest.raises(ConfigError, match=r"'train.optimizer' must be one of adam, adamw; got 1"):
        load_config(overrides=["train.optimizer=1"])


def load_config_text(text: str) -> ExperimentConfig:
    import yaml

    from trspose.config import config_from_dict

    return config_from_dict(yaml.safe_load(text))


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.stepz=3", "train.stepz"),
        ("nosuchsection.x=1", "nosuchsection"),
        ("train.steps=abc", "train.steps"),
        ("data.input_size=[1,2,3]", "data.input_size"),
        ("train=5", "train"),
        ("train.optimizer=sgd", "train.optimizer"),
        ("data.input_size=[30,20]", "data.input_size"),
        ("method.confidence_keep_fraction=0", "method.confidence_keep_fraction"),
        ("method.reviewer.weight=-0.5", "method.reviewer.weight"),
        ("method.reviewer.weight_mode=shared", "method.reviewer.weight_mode"),
        # each section checks its own keys where it is defined, and the message starts with the key
        ("train.steps=0", "train.steps must be > 0"),
        ("data.strong_views=0", "data.strong_views must be >= 1"),
        ("data.keypoints=mpii99", "data.keypoints 'mpii99' is neither auto, a preset"),
        ("method.reviewer.size=0", "method.reviewer.size must be >= 1"),
        ("method.joint_cutout.patch_size=0", "method.joint_cutout.count must be >= 0 and patch_size > 0"),
        ("method.ema_momentum=1.5", "method.ema_momentum must be in"),
        ("model.pixel_std=[1,0,1]", "model.pixel_std values must be > 0"),
        ("data.labeled_view.rotation_prob=2", "data.labeled_view.rotation_prob must be in"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=[override])


def test_a_reviewer_share_is_at_most_the_whole_consistency_weight():
    assert load_config(overrides=["method.reviewer.weight=1.5"]).method.reviewer.weight == 1.5  # 'added'
    with pytest.raises(ConfigError, match=r"at most 1 with method\.reviewer\.weight_mode=share"):
        load_config(overrides=["method.reviewer.weight=1.5", "method.reviewer.weight_mode=share"])


def test_yaml_file_with_base_and_unknown_key(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  steps: 7\n  lr: 0.002\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain:\n  steps: 9\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.train.steps, cfg.train.lr) == (9, 0.002)
    (tmp_path / "bad.yaml").write_text("model:\n  backbonez: resnet18\n")
    with pytest.raises(ConfigError, match="model.backbonez"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict_and_yaml():
    cfg = load_config(overrides=["model.mfl_levels=[stage3]", "data.input_size=[64,32]"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert "stage3" in dump_yaml(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads_and_builds_its_model(path):
    import torch

    from trspose.engine.build import build_model
    from trspose.models.pretrained import LITE_WHEELS

    cfg = load_config(path)
    if cfg.model.pretrained == "imagenet" and cfg.model.backbone not in LITE_WHEELS:
        # timm's hub weights are not downloaded in tests (test_pretrained.py checks their offline error)
        cfg = load_config(path, ["model.pretrained="])
    model = build_model(cfg).eval()
    h, w = cfg.data.input_size
    with torch.no_grad():
        out = model(torch.zeros(1, 3, h, w))
    assert out.heatmaps.shape == (1, 17, h // 4, w // 4)


def test_unlabeled_views_are_configurable_and_checked():
    from trspose.engine import build

    cfg = load_config(
        overrides=[
            "method.name=trs",
            "data.strong_view.blur_sigma=[0.1,0.7]",
            "data.weak_view.flip_prob=0.0",
        ]
    )
    views = build.build_unlabeled(cfg, [])
    assert views.strong_transform.augment.blur_sigma == (0.1, 0.7)
    assert views.strong_transform.augment.noise_std == 10.0  # the rest keep their defaults
    assert views.weak_transform.augment.flip_prob == 0.0
    assert views.weak_transform.augment.rotation_deg == 10.0
    with pytest.raises(ConfigError, match=r"data\.strong_view.*blur_prob"):
        load_config(overrides=["data.strong_view.blur_prob=2"])
    with pytest.raises(ConfigError, match=r"data\.strong_view.*blur_sigma"):
        load_config(overrides=["data.strong_view.blur_sigma=[2,1]"])
    with pytest.raises(ConfigError, match=r"data\.strong_view.*noise_std"):
        load_config(overrides=["data.strong_view.noise_std=-1"])
    with pytest.raises(ConfigError, match=r"data\.weak_view\.half_body_prob"):
        load_config(overrides=["data.weak_view.half_body_prob=0.3"])
    with pytest.raises(ConfigError, match=r"data\.weak_view\.cutout_prob"):
        load_config(overrides=["data.weak_view.cutout_prob=0.5"])  # the weak view has no cutout


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.unlabeled_boxes=boxes.json"], "data.unlabeled_boxes needs data.unlabeled_images"),
        (
            ["data.unlabeled_include_train=false"],
            "data.unlabeled_include_train=false needs data.unlabeled_images",
        ),
        (["method.name=dual"], "method.joint_cutout needs method.name trs or mean_teacher"),
    ],
)
def test_settings_that_would_do_nothing_are_config_errors(stick_root, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_semi_config(stick_root, tmp_path, "trs", *overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [  # tiny: 6 steps, evaluations every 3; tiny_semi_config: burn-in 2
        (["method.burn_in_steps=6"], r"method\.burn_in_steps \(6\) must be below train\.steps \(6\)"),
        (["train.eval_every=6"], r"policy=best snapshots the teacher every train\.eval_every steps \(6\) after "
                                 r"method\.burn_in_steps \(2\), .* set e\.g\. train\.eval_every=4 "),
        (["train.eval_every=0"], r"policy=best .* every train\.eval_every steps \(0\)"),
        (["method.reviewer.policy=periodic", "method.reviewer.every=6"], r"policy=periodic .*reviewer\.every=4 "),
        (["method.reviewer.policy=periodic", "method.reviewer.every=0"], r"policy=periodic .* steps \(0\)"),
    ],
)  # fmt: skip
def test_training_refuses_a_schedule_that_never_uses_the_unlabeled_data_or_the_reviewer(
    stick_root, tmp_path, overrides, message
):
    # the config loads (a checkpoint of such a run still evaluates); only training refuses it
    cfg = tiny_semi_config(stick_root, tmp_path, "trs", *overrides)
    with pytest.raises(ConfigError, match=message):
        check_training_schedule(cfg)


def test_a_refused_schedule_is_one_error_line_before_any_run_folder(stick_root, tmp_path, capsys):
    args = ["train", str(TINY), f"data.root={stick_root}", f"output_dir={tmp_path}", "method.name=trs",
            "method.burn_in_steps=6"]  # fmt: skip
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("error: method.burn_in_steps (6) must be below train.steps (6)")
    assert not any(tmp_path.iterdir())


def test_a_reviewer_schedule_is_checked_only_where_a_reviewer_is_trained(stick_root, tmp_path):
    """Snapshots before the last step are enough (the burn-in's end may fall between two of them); methods and
    policies without snapshots accept any period."""
    fine = [("trs", "method.reviewer.policy=periodic", "method.reviewer.every=5"),  # a snapshot at step 5 of 6
            ("trs", "train.eval_every=0", "method.reviewer.policy=slow_ema"),
            ("trs", "train.eval_every=0", "method.reviewer.policy=none"), ("mean_teacher", "train.eval_every=0")]  # fmt: skip
    for method, *overrides in fine:
        check_training_schedule(tiny_semi_config(stick_root, tmp_path, method, *overrides))
    # supervised training has no burn-in to check
    check_training_schedule(load_config(overrides=["method.burn_in_steps=10000"]))
