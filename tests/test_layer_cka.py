"""Every layer pair: the cross products of a layer with every later stored layer, streamed from a store in shards,
against float64 references, linear CKA against its Gram-matrix form and linearity's consecutive CKA."""

import numpy as np
import polars as pl
import pytest

from layergeom.analyses import layer_cka, linearity
from layergeom.analyses.layer_cka.accumulate import NAME
from layergeom.analyses.layer_cka.plots import cka_grid
from layergeom.io.shards import shard_range
from layergeom.io.store import create_store, open_hidden
from layergeom.stats.protocol import merged
from layergeom.stats.scatter import CrossProduct
from layergeom.stream.driver import Feed, stream_layers, stream_to_folder

SELECTION = {"include_special": False, "exclude_first_position": False}


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in its Gram form, <HKH, HLH> / (||HKH|| ||HLH||), K = X X^T, L = Y Y^T, in float64."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A float32 store of 5 stored layers (model layers 0, 2, 3, 7, 8) of related states, and its token table."""
    tmp = tmp_path_factory.mktemp("cka")
    rng = np.random.default_rng(7)
    n_tokens, d = 230, 6
    first = rng.normal(size=(n_tokens, d)) * np.r_[30.0, np.linspace(2.0, 0.2, d - 1)] + 2.0
    data = [first]
    for _ in range(4):
        data.append(data[-1] + data[-1] @ rng.normal(size=(d, d)) * 0.3 + rng.normal(size=(n_tokens, d)))
    data = np.stack(data).astype(np.float32)
    array = create_store(tmp / "s.zarr", *data.shape, "float32", 32, None, {"layers": [0, 2, 3, 7, 8], "n_layers": 8})
    array[:] = data
    special = rng.random(n_tokens) < 0.2
    pl.DataFrame({"position": np.arange(n_tokens) % 7, "is_special": special}).write_parquet(tmp / "tokens.parquet")
    return tmp, data.astype(np.float64), ~special


def test_every_pair_streamed_in_shards_is_the_gram_form_cka_and_linearitys_consecutive_cka(stored):
    tmp, values, keep = stored
    tokens = pl.read_parquet(tmp / "tokens.parquet")
    feeds = layer_cka.accumulate.feeds(tokens, SELECTION) + linearity.accumulate.feeds(tokens, SELECTION)
    array = open_hidden(tmp / "s.zarr")
    folders = [tmp / "parts" / f"{k + 1}-of-3" for k in range(3)]
    for k, folder in enumerate(folders):
        stream_to_folder(array, feeds, folder, shard_range(array.shape[1], 32, k, 3), 64, folder.name)
    table = layer_cka.merge.pair_table(tmp / "s.zarr", tmp / "tokens.parquet", folders, SELECTION)
    assert table.columns[:2] == ["layer", "other_layer"] and table.height == 10
    stored_layers = [0, 2, 3, 7, 8]
    for row in table.iter_rows(named=True):
        x, y = (values[stored_layers.index(row[key])][keep] for key in ("layer", "other_layer"))
        assert row["layer"] < row["other_layer"]
        assert row["cka"] == pytest.approx(gram_cka(x, y), rel=1e-10)
        assert row["relative_depth"] == row["layer"] / 8 and row["other_relative_depth"] == row["other_layer"] / 8
    consecutive = linearity.merge.pair_table(tmp / "s.zarr", tmp / "tokens.parquet", folders, SELECTION)
    band = table.join(consecutive, left_on=["layer", "other_layer"], right_on=["layer", "next_layer"])
    assert band.height == 4
    np.testing.assert_allclose(band["cka"], band["cka_right"], rtol=1e-12)
    grid, layers = cka_grid(table)
    assert layers == stored_layers and np.allclose(grid, grid.T) and np.all(np.diag(grid) == 1.0)


def test_every_pair_cross_products_equal_two_pass_blocks(stored):
    tmp, values, keep = stored
    array = open_hidden(tmp / "s.zarr")
    feed = [Feed(NAME, keep, lambda layer, d, later: CrossProduct(d, later), pairs="every")]
    parts = [dict(stream_layers(array, feed, token_range=r, block_tokens=32)) for r in ((0, 96), (96, 230))]
    assert [len(parts[0][layer][NAME].scatter) for layer in range(4)] == [4, 3, 2, 1]
    assert NAME not in parts[0][4]
    for layer in range(4):
        got = merged(part[layer][NAME] for part in parts).finalize()
        x = values[layer][keep] - values[layer][keep].mean(0)
        want = np.stack([x.T @ (y[keep] - y[keep].mean(0)) for y in values[layer + 1 :]])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_every_pair_reads_each_block_beside_every_later_layer(tmp_path, store_reads):
    data = np.random.default_rng(5).normal(size=(3, 64, 4)).astype(np.float32)
    array = create_store(tmp_path / "s.zarr", *data.shape, "float32", 32, None, {})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    reads = store_reads
    feed = [Feed(NAME, np.ones(64, dtype=bool), lambda layer, d, later: CrossProduct(d, later), pairs="every")]
    assert [sorted(accs) for _, accs in stream_layers(array, feed, block_tokens=32)] == [[NAME], [NAME], []]
    times = {0: 1, 1: 2, 2: 3}  # layer m is read once as itself and once beside every earlier layer
    assert sorted(reads) == sorted((m, start) for m, k in times.items() for start in (0, 32) for _ in range(k))


def test_merge_refuses_cross_products_of_another_depth(stored, tmp_path):
    """Partials of a 5-layer store merged as if the store had 4 layers: named, not read as pairs of other layers."""
    tmp, _, keep = stored
    tokens = pl.read_parquet(tmp / "tokens.parquet")
    array = open_hidden(tmp / "s.zarr")
    stream_to_folder(array, layer_cka.accumulate.feeds(tokens, SELECTION), tmp_path / "a", None, 64)
    with pytest.raises(ValueError, match="layer 0: cross products with 4 later layers .* the store has 3 later"):
        layer_cka.merge.cka_matrix([tmp_path / "a"], 4, keep)
