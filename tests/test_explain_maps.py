"""The pixel-map splits are exact partitions: by class and by distance they sum to each example's a_i."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jordanlab.experiments.explain_maps import (CLASSES, DISTANCE_BINS, OFFSET_BINS, _distance_bins, _offset_bins,
                                                map_summary, pixel_classes, split_by_class, split_by_distance,
                                                split_by_offset)
from jordanlab.kernels import PixelMaps


def _maps(seed: int, k: int, size: int, q: int = 2) -> PixelMaps:
    g = torch.Generator().manual_seed(seed)
    inputs = (torch.rand(k, size, size, generator=g) < 0.2).float()
    targets = torch.maximum(inputs, (torch.rand(k, size, size, generator=g) < 0.4).float())
    examples = torch.randint(0, 4, (k,), generator=g).sort().values
    return PixelMaps(examples, torch.arange(k), inputs, targets,
                     torch.randn(q, k, size, size, generator=g, dtype=torch.float64))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), size=st.integers(1, 9), r=st.integers(-3, 40),
       c=st.integers(-3, 40))
def test_class_distance_and_offset_splits_partition_every_map(seed, k, size, r, c):
    m = _maps(seed, k, size)
    total = m.maps.flatten(1).sum(1)
    torch.testing.assert_close(split_by_class(m).sum(1), total, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split_by_distance(m).sum(1), total, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split_by_offset(m, (r, c)).sum(1), total, rtol=1e-12, atol=1e-12)
    codes = pixel_classes(m.inputs, m.targets)
    assert torch.equal(codes == 0, m.inputs > 0)  # curve pixels are exactly the boundary's
    assert torch.equal(_distance_bins(m.inputs) == 0, m.inputs > 0)  # distance 0 only on the curve
    for item in map_summary(m, 1, range(4), (r, c)):
        rows = m.examples == item["index"]
        want = float(m.maps[1, rows].sum())
        assert abs(item["a_from_maps"] - want) <= 1e-12 * (1 + abs(want))
        if item["presentations"]:
            assert abs(sum(item["classes"].values()) - want) <= 1e-12 * (1 + abs(want))
            assert abs(sum(item["offset"].values()) - want) <= 1e-12 * (1 + abs(want))
            assert len(item["presentations"]) == int(rows.sum())
    assert len(CLASSES) == split_by_class(m).shape[1] and len(DISTANCE_BINS) == split_by_distance(m).shape[1]


def test_distance_bins_follow_the_euclidean_distance_to_the_curve():
    x = torch.zeros(1, 1, 12)
    x[0, 0, 0] = 1.0  # one curve pixel at the left end: distance = column index
    bins = _distance_bins(x)[0, 0].tolist()
    # columns 0 | 1 | 2, 3 | 4..7 | 8..11
    assert bins == [0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    assert _distance_bins(torch.zeros(1, 2, 2)).unique().tolist() == [len(DISTANCE_BINS) - 1]  # no curve: farthest


def test_offset_bins_measure_the_distance_to_the_query_coordinates():
    bins = _offset_bins((1, 20), (0, 0))[0].tolist()
    # columns 0, 1 | 2, 3 | 4..7 | 8..15 | 16..19
    assert bins == [0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4]
    assert _offset_bins((4, 4), (71, 55)).unique().tolist() == [len(OFFSET_BINS) - 1]  # a query off the frame
