"""MultimodalDiT: one diffusion transformer over the latent tokens of every modality, a noise level per token.

    x[m] [B, T_m, C_m] or [B, T_m, h, w, C_m]  --in_proj[m] (video: patchify p x p)--> tokens [B, N_m, D]
    + modality embedding; prefix tokens (Cond.prefix) prepended; all modalities concatenated -> [B, N, D]
    + Cond.aligned [B, S, A] resampled to m's latent frames, projected (streams.py), for its target modalities
    + given partner latents x[p] at the same seconds, projected (partners.py), for m with partners
      (with partner_positions: one projection per video patch position)
    + Cond.maps (pose maps of the given dance) through a small conv net, per video patch (map_stream.py);
      the same features feed a head beside the final hidden state of the video tokens
    t[m] [B, T_m] -> one level per (modality, segment) row -> c_rows [B, R, D] (level MLP + modality
            embedding + Linear(Cond.pooled), the global condition)
    blocks: self-attn with RoPE on time in seconds (+ y/x for video), optional cross-attn to Cond.context,
            MLP; AdaLN-Zero shift/scale/gate per token, gathered from the R rows (see blocks.py)
    final layer (per-token AdaLN) -> out_proj[m] (+ wide_heads[m] over [h ; noisy token] for tokens
            wider than D, wide_heads.py) -> same shapes as x

Assumption: noise levels are constant within each (modality, segment) (segments of
`segment_seconds` on the shared time axis, `mmgen.core.timeline.segment_ids`). Every MoNL draw and
every task satisfies it; with `check_levels` (default) the forward verifies it and the [0, 1]
range in one host sync, set `model.check_levels = False` for sync-free training loops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmgen.core.cond import Cond
from mmgen.core.pretrained import PretrainedMixin
from mmgen.core.timeline import ModalitySpec
from mmgen.dit.blocks import DiTBlock, FinalLayer
from mmgen.dit.checks import (
    check_config,
    check_inputs,
    check_level_values,
    map_target_of,
    token_dim,
    wider_than_model,
)
from mmgen.dit.embeddings import LevelEmbedder
from mmgen.dit.map_stream import MapStream
from mmgen.dit.masking import kept_token_index, restore_tokens, take_tokens
from mmgen.dit.partners import PartnerStreams
from mmgen.dit.rope import rope_angles, rope_cos_sin, rope_frequencies
from mmgen.dit.streams import AlignedStream
from mmgen.dit.tokens import TokenLayout, patchify, unpatchify
from mmgen.dit.wide_heads import WideTokenHead

_MAX_CACHED_LAYOUTS = 64


class MultimodalDiT(PretrainedMixin, nn.Module):
    """Diffusion transformer over all modalities' latent tokens with per-token AdaLN-Zero.

    Args:
        modalities: {name: ModalitySpec}; the order is the token order.
        d_model, depth, num_heads, mlp_ratio: transformer size.
        segment_seconds: length of a noise-level segment on the time axis.
        patch_size: spatial patch (p x p) for video latents; odd h/w are zero-padded.
        context_dim: width of Cond.context; enables cross-attention in every block.
        prefix_dim: width of Cond.prefix; enables prepended prefix tokens (outputs discarded).
        pooled_dim: width of Cond.pooled; enables global conditioning: Linear(pooled) is added to
            every noise-level row's embedding before the SiLU (DiT's class-label path).
        aligned_dim: width of Cond.aligned; enables the time-aligned stream (see streams.py).
        aligned_rate_hz: frames per second of Cond.aligned (needed with aligned_dim).
        aligned_targets: modalities whose tokens receive the stream (None: every modality).
        partners: {target: [source, ...]}: a source's given latents are added to the target's tokens
            at the same seconds (partners.py), e.g. {"video": ["audio", "motion"]}.
        partner_positions: a video target gets one partner projection per patch position (a pose
            guider's spatial map) instead of one vector broadcast over the frame (partners.py).
        map_channels, map_size: enable the map input (map_stream.py): Cond.maps holds pictures
            [C = map_channels, map_size, map_size] at aligned_rate_hz (pose maps of the given dance),
            read per patch of the `map_target` video's tokens (default: the one video modality).
        wide_heads: give every modality whose tokens hold more numbers than d_model a residual MLP
            read-out over [hidden state ; noisy token] (wide_heads.py), so none of its directions
            is left unpredicted.
        adaln: "block" (a modulation Linear per block, DiT) or "sola" (one shared Linear plus a
            rank-`sola_rank` adapter per block, EzAudio's AdaLN-SOLA).
        long_skip: U-ViT long skips: block i's output is concatenated to the input of block
            depth-1-i (i < depth // 2) and fused by a Linear(2D, D) (initialised to pass h through).
        qk_norm: RMS-normalise queries and keys per head.
        gradient_checkpointing: recompute each block in backward (torch.utils.checkpoint).
        mask_decoder_depth: None disables masked-token training; k >= 0 enables `token_mask`
            in forward, the last k blocks then see every position (see masking.py).
        check_levels: check t values (range, constant per segment) in forward: one host sync.
        rope_min_period, rope_max_period: shortest/longest RoPE period on the time axis, seconds.
    """

    def __init__(
        self,
        modalities: Mapping[str, ModalitySpec],
        d_model: int = 256,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        segment_seconds: float = 0.5,
        patch_size: int = 2,
        context_dim: int | None = None,
        prefix_dim: int | None = None,
        pooled_dim: int | None = None,
        aligned_dim: int | None = None,
        aligned_rate_hz: float | None = None,
        aligned_targets: list[str] | tuple[str, ...] | None = None,
        partners: Mapping[str, Sequence[str]] | None = None,
        partner_positions: bool = False,
        map_channels: int | None = None,
        map_size: int | None = None,
        map_target: str | None = None,
        wide_heads: bool = False,
        adaln: str = "block",
        sola_rank: int = 32,
        long_skip: bool = False,
        qk_norm: bool = True,
        gradient_checkpointing: bool = False,
        mask_decoder_depth: int | None = None,
        check_levels: bool = True,
        rope_min_period: float = 0.1,
        rope_max_period: float = 1000.0,
    ) -> None:
        super().__init__()
        specs = {
            n: s if isinstance(s, ModalitySpec) else ModalitySpec(**s) for n, s in dict(modalities).items()
        }
        targets = check_config(
            specs,
            d_model,
            depth,
            num_heads,
            segment_seconds,
            patch_size,
            adaln,
            sola_rank,
            mask_decoder_depth,
            pooled_dim,
            aligned_dim,
            aligned_rate_hz,
            aligned_targets,
            map_channels,
            map_size,
        )
        self.specs = specs
        self.modality_ids = {name: i for i, name in enumerate(specs)}
        self.d_model, self.depth, self.patch_size = d_model, depth, patch_size
        self.segment_seconds = segment_seconds
        self.context_dim, self.prefix_dim = context_dim, prefix_dim
        self.pooled_dim, self.aligned_dim = pooled_dim, aligned_dim
        self.adaln, self.long_skip = adaln, long_skip
        self.mask_decoder_depth = mask_decoder_depth
        self.gradient_checkpointing, self.check_levels = gradient_checkpointing, check_levels

        self.in_proj = nn.ModuleDict({n: nn.Linear(token_dim(s, patch_size), d_model) for n, s in specs.items()})
        self.out_proj = nn.ModuleDict({n: nn.Linear(d_model, token_dim(s, patch_size)) for n, s in specs.items()})
        self.modality_embed = nn.Parameter(torch.zeros(len(specs), d_model))  # added to tokens
        self.level_modality_embed = nn.Parameter(torch.zeros(len(specs), d_model))  # added to level rows
        self.level_embed = LevelEmbedder(d_model)
        self.context_proj = nn.Linear(context_dim, d_model) if context_dim is not None else None
        self.prefix_proj = nn.Linear(prefix_dim, d_model) if prefix_dim is not None else None
        self.prefix_cond = nn.Parameter(torch.zeros(d_model)) if prefix_dim is not None else None
        self.pooled_proj = nn.Linear(pooled_dim, d_model) if pooled_dim is not None else None
        self.aligned = (
            AlignedStream(aligned_dim, aligned_rate_hz, targets, d_model)  # type: ignore[arg-type]
            if aligned_dim is not None
            else None
        )
        self.partners = (
            PartnerStreams(partners, specs, d_model, patch_size if partner_positions else None) if partners else None
        )
        target = map_target_of(specs, map_target) if map_channels is not None else None
        self.maps = (
            MapStream(map_channels, map_size, aligned_rate_hz, target, specs[target], patch_size, d_model)  # type: ignore[arg-type]
            if target is not None
            else None
        )
        self.wide_heads = (
            nn.ModuleDict(
                {n: WideTokenHead(d_model, dim, 2 * dim) for n, dim in wider_than_model(specs, d_model, patch_size).items()}
            )
            if wide_heads
            else None
        )
        self.shared_ada = nn.Linear(d_model, 6 * d_model) if adaln == "sola" else None
        self.blocks = nn.ModuleList(
            DiTBlock(d_model, num_heads, mlp_ratio, context_dim is not None, adaln, sola_rank, qk_norm)
            for _ in range(depth)
        )
        self.skip_fuse = (
            nn.ModuleList(nn.Linear(2 * d_model, d_model) for _ in range(depth // 2)) if long_skip else None
        )
        self.mask_token = nn.Parameter(torch.zeros(d_model)) if mask_decoder_depth is not None else None
        self.final = FinalLayer(d_model)
        has_video = any(s.spatial is not None for s in specs.values())
        self._omega = rope_frequencies(d_model // num_heads, has_video, rope_min_period, rope_max_period)
        self._layouts: dict[tuple, tuple[TokenLayout, torch.Tensor, torch.Tensor]] = {}
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """All initialisation in one place; every residual branch and the output start at exactly zero."""

        def basic(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(basic)
        for p in (self.modality_embed, self.level_modality_embed, self.prefix_cond, self.mask_token):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        for layer in (self.level_embed.mlp[0], self.level_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            if block.adaln == "block":
                nn.init.zeros_(block.ada.weight)
                nn.init.zeros_(block.ada.bias)
            else:
                nn.init.kaiming_uniform_(block.ada_down.weight, a=5**0.5)
                nn.init.zeros_(block.ada_up.weight)
            if block.cross is not None:
                nn.init.zeros_(block.cross.proj.weight)
                nn.init.zeros_(block.cross.proj.bias)
        # a condition added to a trained model starts as a no-op (fine-tuning keeps the model it starts from)
        if self.pooled_proj is not None:
            nn.init.zeros_(self.pooled_proj.weight)
            nn.init.zeros_(self.pooled_proj.bias)
        if self.aligned is not None:
            self.aligned.reset_parameters()
        if self.partners is not None:
            self.partners.reset_parameters()
        if self.maps is not None:
            self.maps.reset_parameters()
        for head in (self.wide_heads or {}).values():
            head.reset_parameters()
        if self.shared_ada is not None:
            nn.init.zeros_(self.shared_ada.weight)
            nn.init.zeros_(self.shared_ada.bias)
        if self.skip_fuse is not None:
            for fuse in self.skip_fuse:  # [I | 0]: pass the main path through, learn the skip
                nn.init.zeros_(fuse.weight)
                nn.init.zeros_(fuse.bias)
                with torch.no_grad():
                    fuse.weight[:, : self.d_model].copy_(torch.eye(self.d_model))
        nn.init.zeros_(self.final.ada.weight)
        nn.init.zeros_(self.final.ada.bias)
        for proj in self.out_proj.values():
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    # --------------------------------------------------------------- forward
    def forward(
        self,
        x: dict[str, torch.Tensor],
        t: dict[str, torch.Tensor],
        cond: Cond | None = None,
        token_mask: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predict, for every modality in x, a tensor of the same shape (in the process's target space).

        Args:
            x: {modality: [B, T_m, C_m] or [B, T_m, h, w, C_m]}, any subset of the model's modalities.
            t: {modality: [B, T_m]} noise levels in [0, 1], constant within each segment.
            cond: Cond with `context` (required iff context_dim is set), `prefix` (iff prefix_dim),
                `pooled` (iff pooled_dim), `aligned` and optionally `aligned_mask` (iff aligned_dim).
            token_mask: {modality: [B, T_m] bool}, True = keep (needs mask_decoder_depth; training only).
        """
        batch = check_inputs(self.specs, x, t, cond, token_mask, self.input_dims())
        if token_mask is not None and self.mask_decoder_depth is None:
            raise ValueError(
                "MultimodalDiT: token_mask given but the model was built with mask_decoder_depth=None"
            )
        prefix = cond.prefix if cond is not None else None
        device = next(iter(x.values())).device
        layout, cos, sin = self.layout(
            {n: z.shape[1] for n, z in x.items()}, 0 if prefix is None else prefix.shape[1], device
        )
        if self.check_levels:
            check_level_values(t, layout)
        guide = side = None
        if self.maps is not None and self.maps.target in x:
            assert cond is not None and cond.maps is not None
            guide, side = self.maps(cond.maps, cond.maps_mask, layout.num_frames[self.maps.target])
        h = self._embed_tokens(x, t, prefix, layout, cond, guide)  # [B, N, D]
        c_rows, row = self._embed_levels(t, layout, batch, cond)  # [B, R, D], [N]
        context = context_mask = None
        if self.context_proj is not None:
            assert cond is not None and cond.context is not None
            context, context_mask = self.context_proj(cond.context), cond.context_mask  # [B, L, D], [B, L]
        h = self._backbone(h, c_rows, row, cos, sin, context, context_mask, layout, token_mask)
        h = self.final(h, c_rows, row)  # [B, N, D]
        return self._unembed(h, layout, x, side)

    def layout(
        self, num_frames: dict[str, int], num_prefix: int, device: torch.device
    ) -> tuple[TokenLayout, torch.Tensor, torch.Tensor]:
        """(TokenLayout, cos, sin) for these lengths, cached per (lengths, prefix, device); cos/sin [N, Dh] (rope_cos_sin)."""
        key = (tuple((n, int(num_frames[n])) for n in self.specs if n in num_frames), num_prefix, str(device))
        hit = self._layouts.get(key)
        if hit is None:
            layout = TokenLayout.build(
                self.specs,
                num_frames,
                segment_seconds=self.segment_seconds,
                patch_size=self.patch_size,
                num_prefix=num_prefix,
                modality_ids=self.modality_ids,
            )
            angles = rope_angles(layout.seconds, layout.y, layout.x, *self._omega)  # [N, Dh/2] float64
            cos, sin = rope_cos_sin(angles)
            hit = (layout.to(device), cos.to(device), sin.to(device))
            if len(self._layouts) >= _MAX_CACHED_LAYOUTS:
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[key] = hit
        return hit

    def input_dims(self) -> dict[str, int | None]:
        """Width of each Cond field this model reads (None: the model takes no such input)."""
        return {
            "context": self.context_dim,
            "prefix": self.prefix_dim,
            "pooled": self.pooled_dim,
            "aligned": self.aligned_dim,
            "maps": self.maps.channels * self.maps.size**2 if self.maps is not None else None,
        }

    def _embed_tokens(
        self,
        x: dict[str, torch.Tensor],
        t: dict[str, torch.Tensor],
        prefix: torch.Tensor | None,
        layout: TokenLayout,
        cond: Cond | None,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings [B, N, D]; `guide` [B, T, P, D] is the map input's addition to its target."""
        parts = [] if prefix is None else [self.prefix_proj(prefix)]  # type: ignore[misc]
        for name in layout.names:
            z = x[name]
            tokens = (
                patchify(z, self.patch_size) if self.specs[name].spatial is not None else z
            )  # [B, N_m, C_tok]
            h = self.in_proj[name](tokens) + self.modality_embed[self.modality_ids[name]]
            t_m = layout.num_frames[name]
            add = self.partners(name, t_m, x, t) if self.partners is not None else None  # [B, T, P, D]
            if self.aligned is not None and name in self.aligned.targets:
                assert cond is not None and cond.aligned is not None
                stream = self.aligned(cond.aligned, cond.aligned_mask, name, self.specs[name].rate_hz, t_m)
                add = stream[:, :, None] if add is None else add + stream[:, :, None]  # [B, T, P, D]
            if guide is not None and name == self.maps.target:  # type: ignore[union-attr]
                add = guide if add is None else add + guide  # [B, T, P, D]
            if add is not None:  # P = 1 (broadcast over a frame's patches) or the patches per frame
                per_frame = h.shape[1] // t_m  # video: gh * gw patches per latent frame
                h = (h.unflatten(1, (t_m, per_frame)) + add).flatten(1, 2)  # [B, N_m, D]
            parts.append(h)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [B, N, D] (one part: no copy)

    def _embed_levels(
        self, t: dict[str, torch.Tensor], layout: TokenLayout, batch: int, cond: Cond | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning rows SiLU(level MLP(t_row) + modality embedding [+ Linear(pooled)]): [B, R, D],
        and each token's row [N]."""
        levels = layout.level_rows(t)  # [B, R_latent]
        c = self.level_embed(levels) + self.level_modality_embed[layout.row_modality]  # [B, R_latent, D]
        if layout.num_prefix:
            c = torch.cat([self.prefix_cond.expand(batch, 1, -1).to(c.dtype), c], dim=1)  # type: ignore[union-attr]
        if self.pooled_proj is not None:
            assert cond is not None and cond.pooled is not None
            c = c + self.pooled_proj(cond.pooled)[:, None]  # [B, R, D]: every row, the prefix row too
        return F.silu(c), layout.row

    def _backbone(
        self,
        h: torch.Tensor,
        c_rows: torch.Tensor,
        row: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        context: torch.Tensor | None,
        context_mask: torch.Tensor | None,
        layout: TokenLayout,
        token_mask: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Run the blocks (long skips, token dropping and restoring) on h [B, N, D] -> [B, N, D]."""
        shared = self.shared_ada(c_rows) if self.shared_ada is not None else None  # [B, R, 6D]
        n_skip = self.depth // 2 if self.long_skip else 0
        keep = full = None
        restore_at = self.depth
        if token_mask is not None:
            keep = kept_token_index(layout, token_mask, h.shape[0])  # [B, K]
            full = (row, cos, sin)
            h, row, cos, sin = (
                take_tokens(h, keep),
                row[keep],
                cos[keep],
                sin[keep],
            )  # [B, K, D], [B, K], [B, K, Dh]
            restore_at = self.depth - self.mask_decoder_depth  # type: ignore[operator]
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            if keep is not None and i == restore_at:
                h, skips = self._restore(h, skips, keep, layout)
                row, cos, sin = full  # type: ignore[misc]
            if i >= self.depth - n_skip:
                fuse = self.skip_fuse[i - (self.depth - n_skip)]  # type: ignore[index]
                h = fuse(torch.cat([h, skips.pop()], dim=-1))  # [B, N, D]
            args = (h, c_rows, row, cos, sin, context, context_mask, shared)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, *args, use_reentrant=False)
            else:
                h = block(*args)
            if i < n_skip:
                skips.append(h)
        if keep is not None and restore_at == self.depth:
            h, _ = self._restore(h, [], keep, layout)
        return h

    def _restore(
        self, h: torch.Tensor, skips: list[torch.Tensor], keep: torch.Tensor, layout: TokenLayout
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Kept tokens [B, K, D] (and pending long skips) back to all N positions; dropped ones = mask token."""
        fill = (
            self.mask_token + self.modality_embed[layout.modality.clamp(min=0)]
        )  # [N, D] (prefix: always kept)
        fill = fill.expand(h.shape[0], -1, -1).contiguous()  # [B, N, D]
        return restore_tokens(h, keep, fill), [restore_tokens(s, keep, fill) for s in skips]

    def _unembed(
        self, h: torch.Tensor, layout: TokenLayout, x: dict[str, torch.Tensor], side: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Predictions per modality; `side` [B, N_video, F] are the map input's per-patch features."""
        out = {}
        for name, tokens in layout.split(h).items():
            pred = self.out_proj[name](tokens)  # [B, N_m, C_tok]
            spec = self.specs[name]
            if self.wide_heads is not None and name in self.wide_heads:
                noisy = patchify(x[name], self.patch_size) if spec.spatial is not None else x[name]
                pred = pred + self.wide_heads[name](tokens, noisy)
            if side is not None and name == self.maps.target:  # type: ignore[union-attr]
                pred = pred + self.maps.head(tokens, side)  # type: ignore[union-attr]
            if spec.spatial is not None:
                pred = unpatchify(
                    pred, layout.num_frames[name], spec.spatial, self.patch_size
                )  # [B, T, h, w, C]
            out[name] = pred
        return {name: out[name] for name in x}
