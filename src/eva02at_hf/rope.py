"""Rotary position embeddings of EVA02-AT: the spatial-temporal RoPE (paper Eqs. 8-10) and the baselines.

Pure tensor code. Angles are laid out per rotary pair: a head of dimension `d` has `d / 2` pairs, pair `i`
rotating channels `(2i, 2i + 1)` (EVA02 / timm's interleaved layout). The embedding handed to attention is
`cat([sin, cos], -1)` with each angle repeated for the two channels of its pair, shape `(N, 2 * d)`.
"""

from __future__ import annotations

import torch


def rope_frequencies(num_pairs: int, theta: float) -> torch.Tensor:
    """Standard RoPE spectrum `theta ** (-i / num_pairs)`, i = 0..num_pairs-1, shape (num_pairs,), float32."""
    exponent = torch.arange(num_pairs, dtype=torch.float32) / num_pairs
    return 1.0 / (theta**exponent)


def spatial_rope_angles(
    grid_size: tuple[int, int], head_dim: int, theta: float = 10000.0, reference_grid_size: int | None = None
) -> torch.Tensor:
    """EVA02's 2D RoPE angles over the whole head dimension, shape (H * W, head_dim / 2).

    The first half of the rotary pairs rotate with the row (height) coordinate, the second half with the
    column (width) coordinate, each with the spectrum `rope_frequencies(head_dim / 4, theta)`. As in EVA02,
    coordinates are rescaled so the grid spans `reference_grid_size` positions (timm's `ref_feat_shape`).
    Patches are ordered row-major (h, w).
    """
    height, width = grid_size
    bands = rope_frequencies(head_dim // 4, theta)
    rows = torch.arange(height, dtype=torch.float32)
    cols = torch.arange(width, dtype=torch.float32)
    if reference_grid_size is not None:
        rows = rows / height * reference_grid_size
        cols = cols / width * reference_grid_size
    row_grid, col_grid = torch.meshgrid(rows, cols, indexing="ij")
    row_angles = row_grid.reshape(-1, 1) * bands
    col_angles = col_grid.reshape(-1, 1) * bands
    return torch.cat([row_angles, col_angles], dim=-1)


def temporal_rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """1D temporal RoPE angles over the whole head dimension (R_t of Eq. 9), shape (T, head_dim / 2).

    Every rotary pair receives a temporal angle `t * theta ** (-i / (head_dim / 2))`: no pair is reserved for
    space or time.
    """
    return positions.to(torch.float32).reshape(-1, 1) * rope_frequencies(head_dim // 2, theta)


def spatial_temporal_rope_angles(spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
    """Angles of R_(xy+t) = R_xy * R_t (Eqs. 8-9): rotations compose, so angles add per rotary pair.

    Args:
        spatial: (N, head_dim / 2), replicated over the T frames.
        temporal: (T, head_dim / 2), replicated over the N patches of each frame.

    Returns:
        (T * N, head_dim / 2), frame-major (all patches of frame 0, then frame 1, ...).
    """
    return (temporal[:, None, :] + spatial[None, :, :]).reshape(-1, spatial.shape[-1])


def split_3d_rope_angles(
    num_frames: int, grid_size: tuple[int, int], head_dim: int, theta: float = 10000.0
) -> torch.Tensor:
    """CogVideoX's 3D RoPE baseline: the rotary pairs are split 1/4 (time), 3/8 (height), 3/8 (width), each slice
    a 1D RoPE over its own coordinate (integer indices). Shape (T * H * W, head_dim / 2), frame-major.
    """
    num_pairs = head_dim // 2
    time_pairs = num_pairs // 4
    row_pairs = (num_pairs - time_pairs) // 2
    col_pairs = num_pairs - time_pairs - row_pairs
    height, width = grid_size
    t, h, w = torch.meshgrid(
        torch.arange(num_frames, dtype=torch.float32),
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    return torch.cat(
        [
            t.reshape(-1, 1) * rope_frequencies(time_pairs, theta),
            h.reshape(-1, 1) * rope_frequencies(row_pairs, theta),
            w.reshape(-1, 1) * rope_frequencies(col_pairs, theta),
        ],
        dim=-1,
    )


def angles_to_sincos(angles: torch.Tensor) -> torch.Tensor:
    """(N, d / 2) angles -> (N, 2 * d) embedding `cat([sin, cos])`, each angle repeated for its channel pair."""
    angles = angles.repeat_interleave(2, dim=-1)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def prepend_identity_rotation(sincos: torch.Tensor, num_tokens: int = 1) -> torch.Tensor:
    """Prepend `num_tokens` rows that rotate by angle 0 (sin = 0, cos = 1) to a (N, 2 * d) `cat([sin, cos])`
    table: (num_tokens + N, 2 * d). Lets `apply_rope` run over a whole sequence whose leading tokens (the CLS
    token) carry no position, leaving them exactly unchanged, instead of slicing and re-concatenating per layer.
    """
    identity = torch.zeros(num_tokens, sincos.shape[-1], dtype=sincos.dtype, device=sincos.device)
    identity[:, sincos.shape[-1] // 2 :] = 1.0
    return torch.cat([identity, sincos], dim=0)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair by 90 degrees: [x0, x1, x2, x3, ...] -> [-x1, x0, -x3, x2, ...]."""
    return torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape(x.shape)


def apply_rope(x: torch.Tensor, sincos: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs of `x` (..., N, d) by the angles encoded in `sincos` (N, 2 * d).

    The rotation is computed in the precision of `sincos` (float32) and cast back to `x.dtype`, so bf16 / fp16
    activations do not lose the angle precision.
    """
    sin, cos = sincos.chunk(2, dim=-1)
    return (x * cos + rotate_pairs(x) * sin).to(x.dtype)
