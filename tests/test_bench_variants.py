"""The pose cache's clip variants (bench.posed): what each does to a frame."""

from __future__ import annotations

import numpy as np

from bench.posed import SWEEP, VARIANTS, _transformed
from pipeline.frames import Frame


def test_small50_halves_the_picture_centred_on_black() -> None:
    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[:4, :6] = 200  # the top-left quarter bright
    rgb[0, 0] = 0  # one dark pixel, averaged with its 2x2 block
    out = _transformed(Frame(seq=0, pts_s=0.0, rgb=rgb), mirror=False, box=None, shrink=2).rgb
    assert out.shape == rgb.shape
    # The picture is 4x6, at rows 2-5, columns 3-8; the border is black.
    assert out[:2].max() == 0 and out[6:].max() == 0 and out[:, :3].max() == 0 and out[:, 9:].max() == 0
    assert (out[2:4, 3:6] > 0).all() and out[4:6].max() == 0 and out[2:6, 6:9].max() == 0
    assert out[2, 3, 0] == 150 and out[3, 4, 0] == 200  # box-filtered, not decimated


def test_the_sweep_is_the_issues_five_variants() -> None:
    assert SWEEP == ("base", "fps7.5", "fps15", "mirror", "crop80")
    assert all(VARIANTS[name].shrink == 1 for name in SWEEP) and VARIANTS["small50"].shrink == 2


def test_cache_keys_of_the_older_variants_are_unchanged() -> None:
    # Poses cached before `shrink` existed stay valid (posing the whole sweep takes ~20 minutes).
    assert VARIANTS["mirror"].key == "Variant(name='mirror', fps=10.0, mirror=True, crop=0.0)"
    assert VARIANTS["small50"].key.endswith("crop=0.0, shrink=2)")
