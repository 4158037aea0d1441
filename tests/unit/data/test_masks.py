"""Region masks against hand-written references; random ones depend on (seed, step) only."""

from __future__ import annotations

import pytest
import torch

from beyond_backprop.data.masks import (
    MaskConfig,
    central_square,
    draw_masks,
    half_mask,
    hide,
    random_blocks,
    step_generator,
)


def reference_rectangle(height: int, width: int, rows: range, cols: range) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    for i in range(height):
        for j in range(width):
            mask[i, j] = i in rows and j in cols
    return mask


def test_central_square_is_the_middle_half() -> None:
    assert torch.equal(
        central_square(28, 28, 0.5), reference_rectangle(28, 28, range(7, 21), range(7, 21))
    )
    # odd sides, rounded half up: 0.5 * 9 -> 5 rows from (9 - 5) // 2 = 2; 0.5 * 8 -> 4 columns
    assert torch.equal(
        central_square(9, 8, 0.5), reference_rectangle(9, 8, range(2, 7), range(2, 6))
    )
    # a hole never covers the whole image, and is never empty
    assert central_square(4, 4, 0.99).sum() == 9 and central_square(4, 4, 0.01).sum() == 1


def test_random_blocks_paint_the_drawn_squares() -> None:
    # 0.25 of 10 rows -> 3 (2.5 rounded half up), 0.25 of 12 columns -> 3
    batch, height, width, side, count = 3, 10, 12, 3, 4
    masks = random_blocks(batch, height, width, 0.25, count, step_generator(5, 7))
    generator = step_generator(5, 7)  # the same draws, in the documented order
    tops = torch.randint(0, height - side + 1, (batch, count), generator=generator)
    lefts = torch.randint(0, width - side + 1, (batch, count), generator=generator)
    for b in range(batch):
        expected = torch.zeros(height, width, dtype=torch.bool)
        for t, left in zip(tops[b].tolist(), lefts[b].tolist(), strict=True):
            for i in range(t, t + side):
                for j in range(left, left + side):
                    expected[i, j] = True
        assert torch.equal(masks[b], expected)
        assert side * side <= int(masks[b].sum()) <= count * side * side


def test_random_masks_depend_on_seed_and_step_only() -> None:
    cfg = MaskConfig(kind="random_blocks")
    torch.manual_seed(0)
    a = draw_masks(cfg, 8, 28, 28, step_generator(0, 3))
    torch.manual_seed(1)  # the global generator plays no part
    assert torch.equal(a, draw_masks(cfg, 8, 28, 28, step_generator(0, 3)))
    assert not torch.equal(a, draw_masks(cfg, 8, 28, 28, step_generator(0, 4)))
    assert not torch.equal(a, draw_masks(cfg, 8, 28, 28, step_generator(1, 3)))
    assert not torch.equal(a[0], a[1])  # every image has its own blocks


def test_central_masks_are_the_same_for_every_image() -> None:
    masks = draw_masks(MaskConfig(kind="central"), 4, 8, 8, step_generator(0, 0))
    assert masks.shape == (4, 8, 8)
    assert all(torch.equal(m, central_square(8, 8, 0.5)) for m in masks)


@pytest.mark.parametrize(
    ("visible", "rows", "cols"),
    [("top", range(3, 7), range(5)), ("bottom", range(0, 4), range(5)),
     ("left", range(7), range(2, 5)), ("right", range(7), range(0, 3))],
)  # fmt: skip
def test_half_mask_hides_everything_but_the_visible_half(
    visible: str, rows: range, cols: range
) -> None:
    # 7 rows, 5 columns: the visible half is the smaller one (3 rows, 2 columns)
    assert torch.equal(half_mask(7, 5, visible), reference_rectangle(7, 5, rows, cols))  # type: ignore[arg-type]


def test_hide_fills_every_channel_under_the_mask_and_keeps_the_rest() -> None:
    x = torch.randn(2, 3, 4, 4)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = mask[1, 3, 0] = True
    out = hide(x, mask, fill=-1.0)
    for b, c, i, j in torch.cartesian_prod(*map(torch.arange, out.shape)).tolist():
        assert out[b, c, i, j] == (-1.0 if mask[b, i, j] else x[b, c, i, j])
    assert torch.equal(hide(x, mask[0]), hide(x, mask[0].expand(2, -1, -1)))  # (H, W) broadcasts


def test_mask_config_problems() -> None:
    assert MaskConfig().problems() == []
    bad = MaskConfig(central_size=1.0, block_size=0.0, blocks=0).problems()
    assert [key for key, _ in bad] == ["central_size", "block_size", "blocks"]
