"""Partner streams: a given modality's latents added to another modality's tokens at the same seconds.

The DiT sees every modality in one sequence, so a target's tokens can always *attend* to a given
partner; attention has to find the partner frame of the same seconds among all of them. A partner
stream hands the matching frame over directly, the per-token form of "channel-concat"
conditioning between two modalities of the same sequence. (On ToyDance it did not make generated
video follow the music, broadcast or per patch: 240 clips are too few for the DiT to learn to draw
a given dance, docs/experiments.md.)

    x[source] [B, T_s, C_s] (video sources [B, T_s, h, w, C_s] are averaged over h, w)
        frames with level 0 (given) kept ──resample_stream to the target's latent frames──►
        [B, T_t, C_s], present [B, T_t] ──Linear (zero at init)──► [B, T_t, 1, D]; absent frames and an
        absent or generated source: a learned null vector (zero at init) ──sum over sources──►
        added to every token of the target's frame (broadcast over video patches)

With `patch_size` given (the model's `partner_positions`), a video target gets one projection per
patch position: [B, T_t, C_s] -> [B, T_t, gh * gw, D], each patch its own linear read of the
partner frame (with its own null vector). A token's content does not say where in the frame it
sits (video positions live only in RoPE, inside attention), so one vector broadcast over the frame
cannot tell a patch what to draw there; per position it can, like a pose guider's spatial map.

Only given frames feed the stream, so generating the source (joint generation) and dropping it
for classifier-free guidance both leave the null vector, and a pretrained DiT gains the stream as
an exact no-op at step 0 (`init_new: [partners.]`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mmgen.core.timeline import ModalitySpec
from mmgen.dit.streams import resample_stream


def _key(source: str, target: str) -> str:
    return f"{source}_to_{target}"


def _patches(spec: ModalitySpec, patch_size: int) -> int:
    """Patches per latent frame of a video modality (odd sizes are zero-padded by patchify)."""
    h, w = spec.spatial  # type: ignore[misc]
    return math.ceil(h / patch_size) * math.ceil(w / patch_size)


class PartnerStreams(nn.Module):
    """`partners` {target: [source, ...]}: each source's given latents feed the target's tokens;
    with `patch_size`, a video target's patches each get their own projection."""

    def __init__(
        self,
        partners: Mapping[str, Sequence[str]],
        specs: Mapping[str, ModalitySpec],
        d_model: int,
        patch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.partners = {str(t): tuple(str(s) for s in sources) for t, sources in partners.items()}
        for target, sources in self.partners.items():
            bad = [m for m in (target, *sources) if m not in specs]
            if bad or target in sources or len(set(sources)) != len(sources) or not sources:
                raise ValueError(
                    f"MultimodalDiT: partners must map a modality of {list(specs)} to other, distinct modalities "
                    f"of it, got {target!r}: {list(sources)}"
                )
        self.specs = dict(specs)
        # patches per latent frame of each target: 1 = one vector broadcast over the frame
        self.positions = {
            t: _patches(specs[t], patch_size)
            if patch_size is not None and specs[t].spatial is not None
            else 1
            for t in self.partners
        }
        pairs = [(s, t) for t, sources in self.partners.items() for s in sources]
        self.proj = nn.ModuleDict(
            {_key(s, t): nn.Linear(specs[s].channels, self.positions[t] * d_model) for s, t in pairs}
        )
        self.null = nn.ParameterDict(
            {_key(s, t): nn.Parameter(torch.zeros(self.positions[t], d_model)) for s, t in pairs}
        )

    def reset_parameters(self) -> None:
        for proj in self.proj.values():
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        for null in self.null.values():
            nn.init.zeros_(null)

    def forward(
        self, target: str, num_frames: int, x: Mapping[str, torch.Tensor], t: Mapping[str, torch.Tensor]
    ) -> torch.Tensor | None:
        """The addition to `target`'s latent frames, [B, num_frames, positions, D] (positions = 1 unless
        per patch), or None if it has no partners."""
        total = None
        for source in self.partners.get(target, ()):
            key = _key(source, target)
            null = self.null[key]
            if source in x:
                z = x[source]
                z = z.mean(dim=(2, 3)) if z.dim() == 5 else z  # [B, T_s, C_s]
                values, present = resample_stream(
                    z, t[source] == 0, self.specs[source].rate_hz, self.specs[target].rate_hz, num_frames
                )  # [B, T_t, C_s], [B, T_t]
                projected = self.proj[key](values).unflatten(-1, null.shape)  # [B, T_t, P, D]
                add = torch.where(present[..., None, None], projected, null.to(values.dtype))
            else:
                add = null.expand(1, num_frames, -1, -1)
            total = add if total is None else total + add
        return total
