"""Every accumulator kind fed torch tensors (the fused extraction path) equals the numpy path to 1e-12.

The tensors are on the CPU, or on the device that LAYERGEOM_TEST_DEVICE names (``cuda``: benchmarks/gpu_check.py).
"""

import os

import numpy as np
import polars as pl
import pytest
import torch

from layergeom.analyses.dimensions.accumulate import feeds as dimensions_feeds
from layergeom.analyses.massive.accumulate import feeds as massive_feeds
from layergeom.analyses.norm_variance.accumulate import feeds as norm_variance_feeds
from layergeom.analyses.posctx.accumulate import feeds as posctx_feeds
from layergeom.analyses.registry import kinds
from layergeom.analyses.summary.accumulate import feeds as summary_feeds
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import CrossProduct, UnitSum
from layergeom.stream.driver import Feed, FeedSet, LayerFeeds

DEVICE = torch.device(os.environ.get("LAYERGEOM_TEST_DEVICE", "cpu"))


def to_tensor(block: np.ndarray) -> torch.Tensor:
    """A numpy block as a tensor on the test device."""
    return torch.from_numpy(block).to(DEVICE)


def grid_tokens(n_ctx: int = 6, length: int = 9) -> pl.DataFrame:
    """A contexts token table: n_ctx sequences of ``length`` tokens, a few token types, two topics."""
    rng = np.random.default_rng(1)
    n = n_ctx * length
    return pl.DataFrame(
        {
            "seq_id": np.repeat(np.arange(n_ctx), length),
            "position": np.tile(np.arange(length), n_ctx),
            "token_id": rng.integers(0, 7, n),
            "is_special": np.zeros(n, dtype=bool),
            "topic": np.repeat(np.array(["a", "b"] * (n_ctx // 2)), length),
        }
    )


def feed_all(feeds, values, rows_per_block, to):
    """Feed ``values`` (n, d) in blocks through the feeds of a pass as layer 0 of 3, the pair feeds beside the rows
    reversed (layer 1) and squared (layer 2); ``to`` maps a numpy block to what is fed."""
    feed_set = LayerFeeds(feeds, len(values), "test")
    accs = feed_set.start(0, values.shape[1], feed_set.later(0, 3))
    for lo in range(0, len(values), rows_per_block):
        rows = np.arange(lo, min(lo + rows_per_block, len(values)))
        block = values[rows]
        following = [to(block[:, ::-1].copy()), to(block**2)][: feed_set.later(0, 3)]
        feed_set.feed(accs, 0, to(block), rows, "", following)
    return accs


def test_torch_path_equals_numpy_path_for_every_kind():
    tokens = grid_tokens()
    selection = {"include_special": False, "exclude_first_position": True}
    n, d = tokens.height, 5
    center = np.random.default_rng(3).normal(size=d)
    scale = np.random.default_rng(4).uniform(0.5, 2.0, size=d)
    mask = np.ones(n, dtype=bool)

    feeds = [
        *summary_feeds(tokens, selection),
        *norm_variance_feeds(tokens, selection),
        *posctx_feeds(tokens, selection),
        *dimensions_feeds(tokens, selection),
        *massive_feeds(tokens, selection),
        Feed("units", mask, lambda layer, d: UnitSum(d)),
        Feed("centered", mask, lambda layer, d: UnitSum(d, center)),
        Feed("standardized", mask, lambda layer, d: UnitSum(d, center, scale)),
        Feed("sample", mask, lambda layer, d: PointSample(d)),
        Feed("pairs", mask, lambda layer, d, later: CrossProduct(d, later), pairs="next"),
        Feed("every", mask, lambda layer, d, later: CrossProduct(d, later), pairs="every"),
    ]
    values = np.random.default_rng(2).normal(size=(n, d)) * 3 + 1
    values[4] = 0.0  # a zero vector has no direction
    on_host = feed_all(feeds, values, 11, lambda v: v)
    on_device = feed_all(feeds, values, 11, to_tensor)
    seen = {type(acc).__name__ for acc in on_host.values()}
    assert seen == set(kinds()), seen
    for name, acc in on_host.items():
        host, dev = acc.state(), on_device[name].state()
        assert set(host) == set(dev)
        for key in host:
            assert isinstance(dev[key], np.ndarray | np.generic), (name, key)
            np.testing.assert_allclose(dev[key], host[key], rtol=1e-12, atol=1e-12, err_msg=f"{name}/{key}")


@pytest.mark.parametrize("first", ["numpy", "torch"])
def test_merge_across_kinds_of_arrays(first):
    """A device accumulator merges with a host one (a partial loaded from disk) in either order."""
    tokens = grid_tokens()
    selection = {"include_special": False, "exclude_first_position": False}
    feeds = [
        *norm_variance_feeds(tokens, selection),
        *posctx_feeds(tokens, selection),
        *massive_feeds(tokens, selection),
    ]
    values = np.random.default_rng(5).normal(size=(tokens.height, 4))
    half = tokens.height // 2
    whole = feed_all(feeds, values, 13, lambda v: v)
    rows = np.arange(tokens.height)
    for name in whole:
        parts = []
        for keep, kind in ((rows < half, first), (rows >= half, "torch" if first == "numpy" else "numpy")):
            feed_set = FeedSet([f for f in feeds if f.name == name], tokens.height, "test")
            acc = feed_set.start(0, 4)
            block = values[keep]
            feed_set.feed(acc, to_tensor(block) if kind == "torch" else block, rows[keep])
            parts.append(acc[name])
        parts[0].merge(parts[1])
        for key, value in whole[name].state().items():
            np.testing.assert_allclose(parts[0].state()[key], value, rtol=1e-12, atol=1e-12, err_msg=f"{name}/{key}")
