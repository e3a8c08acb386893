import numpy as np
import pytest
import torch

from torch import nn

from sss_auto.networks.dfe import DFE, DFEBlock
from sss_auto.networks.config import ModelConfig
from sss_auto.networks.model import SSSNet
from sss_auto.networks.prompts import Prompts
from sss_auto.errors import CheckpointError
from sss_auto.networks.sam2_parts import build_sam2_parts


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SSSNet(ModelConfig(1, 4, 64, "test"))


def test_outputs_have_input_resolution_and_refinement_changes_prompted_class_only(model):
    x = torch.randn(2, 1, 64, 64)
    prompts = Prompts.empty(2, 3)
    prompts.valid[0, 1] = True
    prompts.boxes[0, 1] = torch.tensor([10.0, 12.0, 40.0, 44.0])
    prompts.points[0, 1] = torch.tensor([25.0, 28.0])
    out = model(x, prompts)
    assert out.coarse.shape == out.fused.shape == (2, 4, 64, 64)
    changed = (out.fused != out.coarse).flatten(2).any(-1)
    assert changed.tolist() == [[False, False, True, False], [False, False, False, False]]


def test_dfe_formula_without_disagreement_has_no_residual():
    block = DFEBlock(8)
    f = torch.randn(2, 8, 4, 4)
    out = block(f, f.clone())
    a = block.align(f)
    expected = torch.sigmoid(torch.ones(())) * block.mlp(a) + (1 - torch.sigmoid(torch.ones(()))) * block.mlp(a)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_dfe_residual_grows_when_views_disagree():
    torch.manual_seed(1)
    block = DFEBlock(8)
    f_w = torch.randn(1, 8, 4, 4)
    similar, different = f_w + 0.01 * torch.randn_like(f_w), -f_w

    def residual(f_s):
        a_w, a_s = block.align(f_w), block.align(f_s)
        s = torch.cosine_similarity(a_w.mean((2, 3)), a_s.mean((2, 3)))
        return ((1 - s) * (a_s - a_w).norm()).item()

    assert residual(different) > 10 * residual(similar)


def test_dfe_weak_strong_gradients_reach_the_strong_branch_only():
    dfe = DFE(8, (1,))
    with torch.no_grad():
        dfe.gates["1"].fill_(1.0)
    f_w = [torch.randn(1, 8, 4, 4, requires_grad=True) for _ in range(3)]
    f_s = [torch.randn(1, 8, 4, 4, requires_grad=True) for _ in range(3)]
    out = dfe.enhance([f_s], f_w, "weak_strong")[0]
    sum(o.sum() for o in out).backward()
    assert all(f.grad is None for f in f_w)
    assert all(f.grad is not None for f in f_s[1:2])
    assert out[0] is f_s[0] and out[2] is f_s[2]  # levels 0 and 2 pass through


def test_dfe_weak_branch_shared_between_strong_views_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    block = DFEBlock(8)
    f_w, f_s = torch.randn(3, 8, 4, 4), torch.randn(6, 8, 4, 4)  # two strong views of 3 samples, view-major
    shared = block.from_weak(f_w, f_s)
    shared.square().sum().backward()
    shared_grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    repeated = block(f_w.repeat(2, 1, 1, 1), f_s)  # the weak branch computed once per view
    repeated.square().sum().backward()
    torch.testing.assert_close(shared, repeated)
    for a, b in zip(shared_grads, (p.grad for p in block.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_dfe_strong_pair_enhances_each_view_with_the_other_and_never_reads_weak_features():
    torch.manual_seed(0)
    dfe = DFE(8, (1, 2))
    with torch.no_grad():
        for gate in dfe.gates.values():
            gate.fill_(0.5)
    views = [[torch.randn(2, 8, 4, 4) for _ in range(3)] for _ in range(2)]
    out = dfe.enhance(views, None, "strong_pair")
    block = dfe.blocks["1"]
    torch.testing.assert_close(out[0][1], views[0][1] + 0.5 * block(views[0][1], views[1][1]))
    torch.testing.assert_close(out[1][1], views[1][1] + 0.5 * block(views[1][1], views[0][1]))
    weak = [torch.randn(2, 8, 4, 4) for _ in range(3)]
    again = dfe.enhance(views, weak, "strong_pair")  # weak features given: ignored by construction
    for a, b in zip(out, again):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_dfe_one_strong_view_pairs_with_a_channel_dropout_copy_of_itself():
    torch.manual_seed(0)
    dfe = DFE(8, (1,))
    with torch.no_grad():
        dfe.gates["1"].fill_(1.0)
    view = [torch.randn(2, 8, 4, 4) for _ in range(3)]
    first = dfe.enhance([view], None, "strong_pair", torch.Generator().manual_seed(3))[0][1]
    second = dfe.enhance([view], None, "strong_pair", torch.Generator().manual_seed(3))[0][1]
    torch.testing.assert_close(first, second)  # the dropout draw comes from the generator
    assert not torch.allclose(first, view[1])


def test_dfe_at_gate_zero_returns_the_features_unchanged():
    dfe = DFE(8, (1, 2))
    views = [[torch.randn(2, 8, 4, 4) for _ in range(3)] for _ in range(2)]
    for mode, weak in (("strong_pair", None), ("weak_strong", [torch.randn(2, 8, 4, 4) for _ in range(3)])):
        for enhanced, original in zip(dfe.enhance(views, weak, mode), views):
            for x, y in zip(enhanced, original):
                torch.testing.assert_close(x, y, rtol=0, atol=0)
    with pytest.raises(ValueError, match="strong_pair"):
        dfe.enhance(views, None, "bogus")


def test_checkpoints_without_dfe_gates_load_for_prediction_but_not_to_continue_training(model):
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("dfe.gates")}
    fresh = SSSNet(ModelConfig(1, 4, 64, "test"))
    fresh.load_trained_state(state)
    torch.testing.assert_close(fresh.state_dict()["coarse_head.out.2.weight"], state["coarse_head.out.2.weight"])
    with pytest.raises(CheckpointError, match="gated residual"):
        fresh.load_trained_state(state, resuming=True)


def test_dfe_pixel_mlp_matches_the_nchw_modules_it_stores():
    """The MLP runs on a (pixels, C) matrix but is the Sequential of 1x1 convs, LayerNorm2d and ReLU it stores."""
    torch.manual_seed(0)
    mlp = DFEBlock(8).mlp
    nchw = nn.Sequential(*mlp)  # the same modules, run one by one on (B, C, h, w)
    assert list(mlp.state_dict()) == list(nchw.state_dict())  # checkpoints keep their layout
    x = torch.randn(3, 8, 5, 4, requires_grad=True)
    out = mlp(x)
    out.square().sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    x.grad = None
    mlp.zero_grad()
    expected = nchw(x)
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, [x.grad] + [p.grad for p in nchw.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_sam_prompts_are_x_then_y():
    from sss_auto.prompting.from_masks import box_and_point

    mask = np.zeros((8, 32), bool)
    mask[2:5, 10:21] = True  # rows (y) 2-4, columns (x) 10-20
    box, point = box_and_point(mask)
    assert box.tolist() == [10.0, 2.0, 21.0, 5.0]
    assert mask[int(point[1]), int(point[0])] and point[0] > 8


def _official_checkpoint(tmp_path, variant="test", image_size=64):
    from hydra import compose
    from hydra.utils import instantiate

    build_sam2_parts(variant, image_size)  # initialises hydra
    from sss_auto.networks.sam2_parts import TEST_OVERRIDES, VARIANTS

    overrides = [f"++model.image_size={image_size}"] + (TEST_OVERRIDES if variant == "test" else [])
    model = instantiate(compose(config_name=VARIANTS[variant][0], overrides=overrides).model, _recursive_=True)
    path = tmp_path / "sam2_random.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model


def test_official_checkpoint_layout_loads_strictly(tmp_path):
    path, reference = _official_checkpoint(tmp_path)
    parts = build_sam2_parts("test", 64, path)
    assert parts.pretrained
    torch.testing.assert_close(parts.mask_decoder.state_dict(), reference.sam_mask_decoder.state_dict())


def test_wrong_variant_and_truncated_checkpoints_are_refused(tmp_path):
    path, _ = _official_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not match SAM-2 variant 'tiny'"):
        build_sam2_parts("tiny", 64, path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        build_sam2_parts("test", 64, truncated)


def test_a_sam_2_0_checkpoint_is_recognised_and_loads_into_the_same_parts(tmp_path):
    from hydra import compose
    from hydra.utils import instantiate

    from sss_auto.networks.sam2_parts import CONFIGS_2_0

    build_sam2_parts("test", 64)  # initialises hydra
    model = instantiate(compose(config_name=CONFIGS_2_0["tiny"], overrides=["++model.image_size=64"]).model, _recursive_=True)
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    parts = build_sam2_parts("tiny", 64, path)
    torch.testing.assert_close(parts.prompt_encoder.state_dict(), model.sam_prompt_encoder.state_dict())


def test_a_medsam2_checkpoint_is_recognised_by_name_and_keys_and_loads_at_another_image_size(tmp_path):
    """MedSAM2_latest.pt: SAM 2.1 Hiera-tiny trained at 512 px, saved in SAM-2's training layout (a "model" state
    dict beside optimiser state); written here from a randomly initialised model in that layout."""
    from hydra import compose
    from hydra.utils import instantiate

    from sss_auto.networks.checkpoints import read_official_checkpoint, variant_of_checkpoint, variant_of_state
    from sss_auto.networks.sam2_parts import VARIANTS

    build_sam2_parts("test", 64)  # initialises hydra
    model = instantiate(compose(config_name=VARIANTS["tiny"][0], overrides=["++model.image_size=512"]).model, _recursive_=True)
    path = tmp_path / "MedSAM2_latest.pt"
    torch.save({"model": model.state_dict(), "optimizer": {}, "epoch": 3}, path)
    assert variant_of_checkpoint(path) == "tiny" and variant_of_state(read_official_checkpoint(path, "tiny")) == "tiny"
    parts = build_sam2_parts("tiny", 64, path)
    assert parts.pretrained
    torch.testing.assert_close(parts.image_encoder.state_dict(), model.image_encoder.state_dict())
    test_path, _ = _official_checkpoint(tmp_path)
    assert variant_of_state(read_official_checkpoint(test_path, "test")) not in ("tiny", "small", "base_plus", "large")
