"""Segment a clip of consecutive slices through the slice memory (the volumetric configuration `2d_memory`).

SAM-2's `track_step` order: the first slice of a clip is the prompt slice, segmented as the 2d
network does (its prompts go to the refiner); each later slice's stride-16 features attend to the
bank's memories (networks/memory.py) and are decoded without prompts (coarse head). After each
slice, its raw stride-16 features and predicted foreground are written to the bank, as SAM-2
encodes a frame's memory from its unconditioned features. At inference a volume is propagated from
its prompt slice in both directions (`propagation_passes`), each pass with a bank of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sss_auto.networks.memory import MemoryBank
from sss_auto.networks.model import SegOutput, SSSNet
from sss_auto.networks.prompts import Prompts


def segment_clip(net: SSSNet, clip: torch.Tensor, prompts: Prompts | None, slice_index: torch.Tensor,
                 bank: MemoryBank | None = None, sample: bool = False,
                 generator: torch.Generator | None = None, encode_together: bool = True,
                 enhance: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None) -> list[SegOutput]:
    """Logits of every slice of a batch of clips, in clip order.

    Args:
        clip: (B, L, C, H, W) normalized slices; slice 0 is the prompt slice.
        prompts: the prompt slice's prompts, or None.
        slice_index: (B, L) the slices' indices in their volumes (memory distances).
        bank: the clips' memory bank (None: a new one, of the policy and capacity `net` was built with).
        sample: read memories by similarity-weighted resampling (training).
        encode_together: encode every slice in one batched call, as SAM-2's training encodes a clip's
            frames (the image encoder has no batch statistics, so the features are the same); False
            encodes slice by slice (inference over a whole volume, to bound memory).
        enhance: applied to every slice's feature pyramid right after encoding (training: DFE on the
            strong clip), so the slice's memory is written from the features it was decoded from.

    Returns:
        one SegOutput per slice; without memory (`net.memory` None) each equals net(slice).
    """
    batch, length = clip.shape[:2]
    size = tuple(clip.shape[-2:])
    if net.memory is not None and bank is None:
        bank = MemoryBank(batch, net.config.memory_frames, net.config.memory_policy)
    outputs = []
    together = [f.unflatten(0, (batch, length)) for f in net.encode(clip.flatten(0, 1))] if encode_together else None
    for t in range(length):
        features = [f[:, t] for f in together] if together is not None else net.encode(clip[:, t])
        if enhance is not None:
            features = enhance(features)
        raw = features[-1]
        keys = raw.detach().mean((2, 3))  # bank bookkeeping stays out of autograd (no dead branches in the graph)
        if net.memory is not None:
            read = bank.read(keys, slice_index[:, t], net.config.memory_frames, generator, sample)
            features = [*features[:-1], net.memory.condition(raw, read)]
        out = net.decode(features, prompts if t == 0 else None, size)
        outputs.append(out)
        if net.memory is not None and t < length - 1:  # the last slice's memory would never be read
            probabilities = out.fused.softmax(1)
            memory, pos = net.memory.remember(raw, 1 - probabilities[:, :1])
            quality = probabilities.detach().max(1).values.mean((1, 2))
            bank.add(memory, pos, keys, quality, slice_index[:, t], conditioning=t == 0)
    return outputs


def propagation_passes(num_slices: int, prompt_slice: int) -> list[list[int]]:
    """The slice orders of inference: from the prompt slice up to the last slice, then from it down to
    the first; each pass starts at the prompt slice (conditioned on its prompts) with a bank of its own."""
    if not 0 <= prompt_slice < num_slices:
        raise ValueError(f"prompt slice {prompt_slice} is outside a volume of {num_slices} slices")
    up = list(range(prompt_slice, num_slices))
    down = list(range(prompt_slice, -1, -1))
    return [up] + ([down] if len(down) > 1 else [])
