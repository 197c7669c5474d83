"""Backbones, heads and the pose model, parametrised over every backbone name (CPU, tiny inputs)."""

import pytest
import timm
import torch

from trspose.errors import ConfigError
from trspose.models import (
    MODEL_NAMES,
    ConvHead,
    DeconvHead,
    FPNHead,
    LevelHead,
    PoseOutput,
    build_backbone,
    build_pose_model,
)

INPUT_SIZE = (64, 32)  # (height, width): the smallest multiple of 32 that is not square
K = 5
# Every build + forward here takes well under 10 s on CPU (HRNet-W48 about 0.5 s), so none is marked slow.


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backbone_features_are_named_by_stride(name):
    backbone = build_backbone(name)
    features = backbone(torch.randn(2, 3, *INPUT_SIZE))
    assert list(features) == ["stage1", "stage2", "stage3", "stage4"]
    assert backbone.strides == {"stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}
    for stage, x in features.items():
        stride = backbone.strides[stage]
        assert x.shape == (2, backbone.channels[stage], INPUT_SIZE[0] // stride, INPUT_SIZE[1] // stride)


# MODEL_NAMES is every backbone name; each builds here with its default ("auto") head
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pose_model_with_all_levels(name):
    levels = ("stage2", "stage3", "stage4")
    model = build_pose_model(backbone=name, num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=levels)
    output = model(torch.randn(2, 3, *INPUT_SIZE))
    expected = (2, K, INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4)  # (B, K, H/4, W/4)
    assert isinstance(output, PoseOutput)
    assert output.heatmaps.shape == expected
    assert list(output.levels) == list(levels)
    assert all(heatmaps.shape == expected for heatmaps in output.levels.values())


def test_hrnet_uses_the_stride4_branch_with_a_conv_head():
    model = build_pose_model(backbone="hrnet_w32", num_keypoints=K, input_size=INPUT_SIZE)
    assert isinstance(model.head, ConvHead) and model.head_feature == "stage1"
    assert model.backbone.channels["stage1"] == 32  # raw HRNet branch, not timm's "incre" 128


def test_output_is_input_over_4_without_levels():
    model = build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=(128, 96))
    output = model(torch.randn(1, 3, 128, 96))
    assert output.heatmaps.shape == (1, K, 32, 24)
    assert output.levels == {}
    assert isinstance(model.head, DeconvHead) and model.head_feature == "stage4"


@pytest.mark.parametrize(
    "num_deconv_layers, stage", [(0, "stage1"), (1, "stage2"), (2, "stage3"), (3, "stage4")]
)
def test_fewer_deconv_layers_read_a_shallower_stage(num_deconv_layers, stage):
    model = build_pose_model(
        backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, num_deconv_layers=num_deconv_layers
    )
    assert model.head_feature == stage
    assert model(torch.randn(2, 3, *INPUT_SIZE)).heatmaps.shape == (2, K, 16, 8)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fpn_head_reads_strides_8_to_32_on_every_backbone(name):
    model = build_pose_model(
        backbone=name, num_keypoints=K, input_size=INPUT_SIZE, head="fpn", head_channels=16
    )
    assert isinstance(model.head, FPNHead)
    finest = "stage1" if name.startswith("hrnet") else "stage2"  # HRNet: all four branches
    assert model.head_feature == tuple(f"stage{i}" for i in range(int(finest[-1]), 5))
    assert model(torch.randn(2, 3, *INPUT_SIZE)).heatmaps.shape == (2, K, 16, 8)


def test_fpn_head_uses_the_fine_stage():
    """A change in one stride-8 cell changes the heatmaps there and not far away (the skip connection)."""
    head = FPNHead([4, 8, 16], K, channels=8).eval()
    torch.nn.init.normal_(head.final_layer.weight)
    features = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 16, 2, 2)]
    before = head(features)
    features[0][:, :, 0, 0] += 5.0  # top-left stride-8 cell
    change = (head(features) - before).abs().sum(dim=(0, 1))  # (16, 16) at stride 4
    assert change[:2, :2].min() > 0
    assert change[8:, 8:].max() == 0


def test_unknown_head_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown head 'unet'.*fpn"):
        build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, head="unet")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("head", ["auto", "fpn"])
@pytest.mark.parametrize("mfl_levels", [(), ("stage2", "stage3", "stage4")])
def test_every_parameter_gets_a_gradient(name, head, mfl_levels):
    """DistributedDataParallel (without find_unused_parameters) needs every parameter used."""
    model = build_pose_model(
        backbone=name, num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=mfl_levels, head=head
    )
    output = model(torch.randn(2, 3, *INPUT_SIZE))
    (output.heatmaps.sum() + sum(h.sum() for h in output.levels.values())).backward()
    unused = [key for key, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_hrnet_without_levels_is_the_pose_hrnet():
    model = build_pose_model(backbone="hrnet_w32", num_keypoints=17, input_size=INPUT_SIZE)
    assert list(model.backbone.channels) == ["stage1"]
    parameters = sum(p.numel() for p in model.parameters())
    assert 28.0e6 < parameters < 29.0e6  # HRNet-W32 pose model: 28.5M (Sun et al. 2019, Table 1)


def test_fuse_levels_changes_the_main_output_to_the_mean():
    kwargs = dict(
        backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=("stage3", "stage4")
    )
    plain = build_pose_model(**kwargs).eval()
    fused = build_pose_model(**kwargs, fuse_levels=True).eval()
    fused.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, *INPUT_SIZE)
    with torch.no_grad():
        a, b = plain(images), fused(images)
    assert not torch.allclose(a.heatmaps, b.heatmaps)
    mean = (a.heatmaps + a.levels["stage3"] + a.levels["stage4"]) / 3
    torch.testing.assert_close(b.heatmaps, mean)
    torch.testing.assert_close(b.levels["stage4"], a.levels["stage4"])


def test_gradients_flow_to_level_heads_and_backbone():
    model = build_pose_model(
        backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=("stage2", "stage4")
    )
    output = model(torch.randn(2, 3, *INPUT_SIZE))
    loss = output.heatmaps.square().mean() + sum(h.square().mean() for h in output.levels.values())
    loss.backward()
    for name, head in model.level_heads.items():
        assert head.final_layer.weight.grad is not None, name
        assert head.final_layer.weight.grad.abs().sum() > 0, name
    assert model.head.final_layer.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_final_layers_use_small_normal_init():
    model = build_pose_model(
        backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=("stage3",)
    )
    for conv in (model.head.final_layer, model.level_heads["stage3"].final_layer):
        assert conv.bias.abs().max() == 0
        assert 0.0005 < conv.weight.std().item() < 0.002


def test_level_head_upsamples_to_requested_size():
    head = LevelHead(in_channels=8, num_keypoints=K, stride=16)
    assert head(torch.randn(2, 8, 4, 3)).shape == (2, K, 16, 12)
    assert head(torch.randn(2, 8, 4, 3), (15, 11)).shape == (2, K, 15, 11)


def test_pretrained_path_round_trip_from_a_classification_checkpoint(tmp_path, caplog):
    classifier = timm.create_model("resnet10t", pretrained=False)  # has an fc layer the backbone lacks
    path = tmp_path / "resnet10t.pth"
    torch.save(classifier.state_dict(), path)
    with caplog.at_level("INFO", logger="trspose.models.backbones"):
        model = build_pose_model(
            backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, pretrained=str(path)
        )
    assert "fc.weight" in caplog.text
    loaded = model.backbone.body.state_dict()
    for key, value in classifier.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value)


def test_pretrained_path_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.pth"):
        build_backbone("resnet10t", tmp_path / "missing.pth")
    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), other)
    with pytest.raises(ConfigError, match="do not fit|lack"):
        build_backbone("resnet10t", other)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"conv1.0.weight": torch.zeros(1)}}, wrapped)
    with pytest.raises(ConfigError, match="wrapped.pth"):
        build_backbone("resnet10t", wrapped)


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="valid names: .*resnet18"):
        build_backbone("resnet19")
    with pytest.raises(ConfigError, match="valid names"):
        build_pose_model(backbone="vit", num_keypoints=K, input_size=INPUT_SIZE)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=(64, 48))
    with pytest.raises(ConfigError, match="stage9"):
        build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, mfl_levels=("stage9",))
    with pytest.raises(ConfigError, match="fuse_levels"):
        build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, fuse_levels=True)
    with pytest.raises(ConfigError, match="stage5"):
        build_backbone("resnet10t", stages=("stage5",))
    with pytest.raises(ConfigError, match="num_deconv_layers"):
        build_pose_model(backbone="resnet10t", num_keypoints=K, input_size=INPUT_SIZE, num_deconv_layers=4)
