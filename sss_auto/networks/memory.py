"""Slice memory for the volumetric configuration `2d_memory` (issue 14; not wired into training yet).

A clip of consecutive slices is segmented slice by slice. The first (prompt) slice is segmented as
the 2d network does; every later slice's stride-16 features attend, through SAM-2's memory
attention, to the memories of slices already segmented; each segmented slice is then written to
memory by SAM-2's memory encoder. Both modules are the `sam2` package's own (`Sam2Parts`); this file
adds only the bookkeeping around them:

- What a slice remembers: one class-agnostic memory per slice, SAM-2's memory encoder over the
  slice's features and its predicted foreground probability 1 − p(background), scaled as SAM-2
  scales mask probabilities for its memory encoder. Which class is where comes from the features.
- `MemoryBank`, one bank per clip of the batch, bounded to `capacity` entries besides the prompt
  slice (which is always read and never evicted, like SAM-2's conditioning frames). Two policies:
  - "fifo": SAM-2's rule: the most recent entries are kept and read.
  - "self_sorting" (the idea of MedSAM-2's memory bank, written here from its description): when
    the bank is full, a newcomer that closely resembles a stored entry (cosine similarity of the
    slices' mean features at least the bank's largest similarity between two of its own entries)
    replaces that entry unless its predicted quality is lower by more than `quality_margin`; a
    newcomer that resembles none replaces the worse of the two most alike entries on the same
    quality condition; otherwise it is dropped. The bank so stays diverse and of high quality.
    Reading is similarity-weighted resampling: entries are drawn with probabilities
    softmax(cos(query, key) / temperature), with replacement, in training; the most similar ones
    at inference (deterministic).
- Temporal position: SAM-2's `maskmem_tpos_enc`, indexed by the slice distance to the current
  slice (clipped to the number of memory frames SAM-2 was built with); the prompt slice has
  distance 0, as SAM-2's conditioning frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sss_auto.networks.memory_policies import POLICIES


@dataclass(eq=False)  # slots are compared by identity (they hold tensors)
class MemorySlot:
    """One slice's memory in one clip.

    Attributes:
        features, pos: (mem_dim, h, w) memory features and their position encoding.
        key: (C,) unit-length mean of the slice's image features (what similarity compares).
        quality: predicted quality of the slice's segmentation in [0, 1].
        slice_index: the slice's index in the volume; order: insertion counter (FIFO age).
        conditioning: the prompt slice.
    """

    features: torch.Tensor
    pos: torch.Tensor
    key: torch.Tensor
    quality: float
    slice_index: int
    order: int = 0
    conditioning: bool = False


@dataclass
class MemoryRead:
    """What a slice attends to: (B, n, mem_dim, h, w) features and positions, (B, n) slice distances."""

    features: torch.Tensor
    pos: torch.Tensor
    distance: torch.Tensor


class MemoryBank:
    """Bounded memories of each clip of a batch (see the module docstring for the rules)."""

    def __init__(self, batch: int, capacity: int, policy: str = "self_sorting", quality_margin: float = 0.1,
                 temperature: float = 0.1) -> None:
        if policy not in POLICIES:
            raise ValueError(f"memory policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if capacity < 1:
            raise ValueError(f"memory capacity must be at least 1, got {capacity}")
        self.capacity, self.policy, self.quality_margin, self.temperature = capacity, policy, quality_margin, temperature
        self.clips: list[list[MemorySlot]] = [[] for _ in range(batch)]
        self._counter = 0

    def __len__(self) -> int:
        """Entries per clip (every clip holds as many)."""
        return len(self.clips[0])

    def add(self, features: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, quality: torch.Tensor,
            slice_index: torch.Tensor | list[int], conditioning: bool = False) -> None:
        """Offer one slice of every clip: features/pos (B, mem_dim, h, w), keys (B, C), quality (B,)."""
        keys = nn.functional.normalize(keys.detach().float(), dim=1)
        for b, clip in enumerate(self.clips):
            slot = MemorySlot(features[b], pos[b], keys[b], 0.0 if quality.is_meta else float(quality[b]),
                              int(slice_index[b]), self._counter, conditioning)
            self._offer(clip, slot)
        self._counter += 1

    def _offer(self, clip: list[MemorySlot], slot: MemorySlot) -> None:
        stored = [s for s in clip if not s.conditioning]
        if slot.conditioning or len(stored) < self.capacity:
            clip.append(slot)
            return
        if self.policy == "fifo":
            clip.remove(min(stored, key=lambda s: s.order))
            clip.append(slot)
            return
        victim = stored[0] if slot.key.is_meta else self._victim(stored, slot)  # meta (memory estimate): shapes only
        if victim is not None:
            clip[clip.index(victim)] = slot

    def _victim(self, stored: list[MemorySlot], slot: MemorySlot) -> MemorySlot | None:
        """The self-sorting rule: the entry the newcomer replaces, or None (the newcomer is dropped)."""
        keys = torch.stack([s.key for s in stored])
        to_new = keys @ slot.key
        nearest = int(to_new.argmax())
        pairwise = keys @ keys.T
        pairwise.fill_diagonal_(-float("inf"))
        redundancy = float(pairwise.max()) if len(stored) > 1 else -float("inf")
        if float(to_new[nearest]) >= redundancy:
            candidate = stored[nearest]
        else:
            first, second = divmod(int(pairwise.argmax()), len(stored))
            candidate = min(stored[first], stored[second], key=lambda s: s.quality)
        return candidate if slot.quality >= candidate.quality - self.quality_margin else None

    def read(self, query_keys: torch.Tensor, current: torch.Tensor | list[int], num: int,
             generator: torch.Generator | None = None, sample: bool = False) -> MemoryRead | None:
        """The memories slice `current[b]` of clip b attends to: the prompt slice, then up to `num` entries.

        Args:
            query_keys: (B, C) mean image features of the current slices.
            sample: draw the entries by similarity-weighted resampling (training, "self_sorting");
                otherwise the most similar ("self_sorting") or the most recent ("fifo").

        Returns:
            None when the bank is empty.
        """
        if not len(self):
            return None
        queries = nn.functional.normalize(query_keys.detach().float(), dim=1)
        chosen = [self._choose(clip, queries[b], num, generator, sample) for b, clip in enumerate(self.clips)]
        features = torch.stack([torch.stack([s.features for s in slots]) for slots in chosen])
        pos = torch.stack([torch.stack([s.pos for s in slots]) for slots in chosen])
        distance = torch.tensor([[0 if s.conditioning else abs(int(current[b]) - s.slice_index) for s in slots]
                                 for b, slots in enumerate(chosen)], dtype=torch.long)
        return MemoryRead(features, pos, distance)

    def _choose(self, clip: list[MemorySlot], query: torch.Tensor, num: int, generator: torch.Generator | None,
                sample: bool) -> list[MemorySlot]:
        conditioning = [s for s in clip if s.conditioning]
        stored = [s for s in clip if not s.conditioning]
        if not stored or num < 1:
            return conditioning
        if self.policy == "fifo":
            return conditioning + sorted(stored, key=lambda s: s.order)[-num:]
        if query.is_meta:  # the planner's memory estimate: as many entries as resampling reads, values unknown
            return conditioning + [stored[i % len(stored)] for i in range(num if sample else min(num, len(stored)))]
        weights = torch.softmax(torch.stack([s.key for s in stored]) @ query / self.temperature, dim=0)
        if sample:
            picks = torch.multinomial(weights, num, replacement=True, generator=generator)
        else:
            picks = weights.topk(min(num, len(stored))).indices
        return conditioning + [stored[int(i)] for i in picks]


class MemoryConditioner(nn.Module):
    """SAM-2's memory encoder and memory attention, applied to the stride-16 features of one slice per clip."""

    def __init__(self, parts, gate: float | None = None) -> None:
        """parts: `Sam2Parts` built with its memory modules (networks/sam2_parts.py); gate: the initial γ of the
        gated residual F + γ(MA(F) − F) (0: the slice starts as its 2d features), None: no gate (MA(F), SAM-2's)."""
        super().__init__()
        self.gate = nn.Parameter(torch.tensor(float(gate))) if gate is not None else None
        from sam2.modeling.position_encoding import PositionEmbeddingSine

        if parts.memory_attention is None or parts.memory_encoder is None:
            raise ValueError("the SAM-2 parts were built without their memory modules")
        self.memory_attention = parts.memory_attention
        self.memory_encoder = parts.memory_encoder
        self.maskmem_tpos_enc = parts.maskmem_tpos_enc
        self.mask_scale, self.mask_bias = parts.memory_mask_scale, parts.memory_mask_bias
        self.position = PositionEmbeddingSine(num_pos_feats=self.memory_attention.d_model, normalize=True)

    @property
    def num_frames(self) -> int:
        """Temporal positions SAM-2 was built with (its num_maskmem)."""
        return int(self.maskmem_tpos_enc.shape[0])

    def remember(self, features: torch.Tensor, foreground: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory of a slice: features (B, 256, h, w) at stride 16, foreground probability (B, 1, 16h, 16w).

        Returns:
            (B, mem_dim, h, w) memory features and their position encoding.
        """
        masks = foreground * self.mask_scale + self.mask_bias  # as SAM-2 scales mask probabilities for memory
        out = self.memory_encoder(features, masks, skip_mask_sigmoid=True)
        return out["vision_features"], out["vision_pos_enc"][-1]

    def condition(self, features: torch.Tensor, memory: MemoryRead | None) -> torch.Tensor:
        """Stride-16 features (B, 256, h, w) after attending to `memory`; unchanged without memory
        (the prompt slice, or the memory-free ablation: then the network is the 2d network)."""
        if memory is None or memory.features.shape[1] == 0:
            return features
        batch, channels, height, width = features.shape
        t_pos = memory.distance.clamp(max=self.num_frames - 1).to(features.device)  # 0: the prompt slice
        index = self.num_frames - 1 - t_pos  # SAM-2's indexing of maskmem_tpos_enc
        tpos = self.maskmem_tpos_enc[index.flatten()].view(batch, -1, self.maskmem_tpos_enc.shape[-1], 1, 1)
        tokens = memory.features.permute(1, 3, 4, 0, 2).flatten(0, 2)  # (n*h*w, B, mem_dim)
        tokens_pos = (memory.pos + tpos).permute(1, 3, 4, 0, 2).flatten(0, 2)
        current = features.flatten(2).permute(2, 0, 1)  # (h*w, B, C)
        current_pos = self.position(features).to(features.dtype).flatten(2).permute(2, 0, 1)
        out = self.memory_attention(curr=current, curr_pos=current_pos, memory=tokens, memory_pos=tokens_pos)
        attended = out.permute(1, 2, 0).reshape(batch, channels, height, width)
        return attended if self.gate is None else features + self.gate * (attended - features)

    def gate_values(self) -> dict[str, float]:
        """{"memory_gate": γ} for the training log (empty without a gate)."""
        return {} if self.gate is None else {"memory_gate": float(self.gate.detach())}
