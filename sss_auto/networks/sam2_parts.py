"""Build SAM-2's image encoder, prompt encoder and mask decoder from the `sam2` package.

The modules are the package's own (Hiera trunk + FPN neck, PromptEncoder, MaskDecoder), built from
its config files; nothing is re-implemented. An official checkpoint (a dict with a "model" state
dict, as Meta releases it) is loaded strictly into the full SAM2Base before the parts are taken.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sss_auto.errors import CheckpointError
from sss_auto.networks.checkpoints import read_official_checkpoint
from sss_auto.networks.variants import VARIANTS

logger = logging.getLogger(__name__)

# A reduced Hiera for CPU tests (0.36 M encoder parameters); see documentation/method.md.
TEST_OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_spec=[4,4,4,4]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
]
# The test variant's memory modules, reduced as its Hiera is: SAM-2's MemoryAttention and MemoryEncoder with one
# layer each and a 256-wide feed-forward (the full ones, 4 layers of 2,048, are 16x the reduced encoder's weights
# and made a 2d_memory step on the CPU about 4x a 2d step of the same slices; benchmarks.md).
TEST_MEMORY_OVERRIDES = [
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=256",
    "++model.memory_encoder.fuser.num_layers=1",
]
# SAM 2.0 (first release) configs; the parts sss-auto uses are the same modules as in 2.1
CONFIGS_2_0 = {"tiny": "configs/sam2/sam2_hiera_t.yaml", "small": "configs/sam2/sam2_hiera_s.yaml",
               "base_plus": "configs/sam2/sam2_hiera_b+.yaml", "large": "configs/sam2/sam2_hiera_l.yaml"}
SAM21_ONLY_KEY = "no_obj_embed_spatial"  # present in every 2.1 checkpoint, absent from 2.0
FEATURE_CHANNELS = 256


@dataclass
class Sam2Parts:
    """The SAM-2 modules sss-auto uses, and whether they hold pretrained weights.

    The memory modules (memory attention, memory encoder, the temporal encodings of memory frames,
    the no-memory position) serve the volumetric configuration (networks/memory.py); the 2d network
    does not register them.
    """

    image_encoder: nn.Module
    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    no_mem_embed: nn.Parameter
    pretrained: bool
    memory_attention: nn.Module | None = None
    memory_encoder: nn.Module | None = None
    maskmem_tpos_enc: nn.Parameter | None = None  # (num_maskmem, 1, 1, mem_dim)
    no_mem_pos_enc: nn.Parameter | None = None
    memory_mask_scale: float = 1.0  # SAM-2's sigmoid_scale_for_mem_enc / sigmoid_bias_for_mem_enc
    memory_mask_bias: float = 0.0


def build_sam2_parts(variant: str, image_size: int, checkpoint: Path | None = None,
                     device: str | torch.device = "cpu", memory: bool = False) -> Sam2Parts:
    """Build the SAM-2 parts of `variant` for square inputs of `image_size` pixels.

    Args:
        variant: "test", "tiny", "small", "base_plus" or "large".
        image_size: input side in pixels (multiple of 32); the prompt encoder's grid is image_size/16.
        checkpoint: official SAM-2 checkpoint file, or None for random initialisation.
        device: "cpu", "cuda", or "meta" (no memory is allocated; used for memory planning).
        memory: the memory modules will be used (2d_memory): the test variant gets its reduced ones
            (TEST_MEMORY_OVERRIDES), built after the rest from a forked random state, so every other
            module is initialised exactly as for the 2d network.

    Raises:
        CheckpointError: unknown variant, unreadable checkpoint, or keys of another variant.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    if variant not in VARIANTS:
        raise CheckpointError(f"unknown SAM-2 variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    config_name, _ = VARIANTS[variant]
    state = read_official_checkpoint(Path(checkpoint), variant) if checkpoint is not None else None
    if state is not None and SAM21_ONLY_KEY not in state and variant in CONFIGS_2_0:
        config_name = CONFIGS_2_0[variant]
        logger.info("%s is a SAM 2.0 checkpoint; building with %s", checkpoint, config_name)
    overrides = [f"++model.image_size={image_size}"] + (TEST_OVERRIDES if variant == "test" else [])
    if not GlobalHydra.instance().is_initialized():
        initialize_config_module("sam2", version_base="1.2")
    config = compose(config_name=config_name, overrides=overrides)
    with _parameters_on_meta() if str(device) == "meta" else contextlib.nullcontext():
        model = instantiate(config.model, _recursive_=True)
    if state is not None:
        _load_state(model, state, Path(checkpoint), variant)
    if memory and variant == "test":
        reduced = compose(config_name=config_name, overrides=overrides + TEST_MEMORY_OVERRIDES)
        with torch.random.fork_rng(), _parameters_on_meta() if str(device) == "meta" else contextlib.nullcontext():
            model.memory_attention = instantiate(reduced.model.memory_attention, _recursive_=True)
            model.memory_encoder = instantiate(reduced.model.memory_encoder, _recursive_=True)
    model = model.to(device)
    return Sam2Parts(model.image_encoder, model.sam_prompt_encoder, model.sam_mask_decoder, model.no_mem_embed,
                     pretrained=checkpoint is not None, memory_attention=model.memory_attention,
                     memory_encoder=model.memory_encoder, maskmem_tpos_enc=model.maskmem_tpos_enc,
                     no_mem_pos_enc=model.no_mem_pos_enc, memory_mask_scale=float(model.sigmoid_scale_for_mem_enc),
                     memory_mask_bias=float(model.sigmoid_bias_for_mem_enc))


@contextlib.contextmanager
def _parameters_on_meta():
    """Move each parameter to the meta device as it is registered, so its initialisation costs nothing.

    (Building under `torch.device("meta")` fails: Hiera calls `.item()` on a tensor in __init__.)
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def _load_state(model: nn.Module, incoming: dict[str, torch.Tensor], path: Path, variant: str) -> None:
    """Strict load: missing, unexpected or mis-shaped keys are reported with the variant."""
    own = model.state_dict()
    missing = sorted(set(own) - set(incoming))
    unexpected = sorted(set(incoming) - set(own))
    mismatched = sorted(k for k in set(own) & set(incoming) if tuple(own[k].shape) != tuple(incoming[k].shape)
                        and not k.endswith("pos_embed"))
    if missing or unexpected or mismatched:
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", mismatched)) if keys)
        raise CheckpointError(f"{path}: does not match SAM-2 variant {variant!r} ({detail}); "
                              "use the checkpoint of the planned variant or change sam2_variant in plans.json")
    model.load_state_dict(incoming, strict=True)
