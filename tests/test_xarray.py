"""Stores open with xarray, and the token table joins them: all occurrences of one token at one layer."""

import numpy as np
import polars as pl
import pytest
import xarray as xr

from layergeom.io.store import create_store, open_hidden

WORDS = ["the", "cat", "sat", "on", "the", "mat", "the", "end"]
NAMES = ["embeddings", "block_1", "block_2"]


@pytest.fixture
def store(tmp_path):
    """A 3-layer store of 8 tokens (chunks of 3 tokens) and its token table."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, len(WORDS), 5)).astype(np.float32)
    values[2, 1] = 0.0  # a stored zero must read back as zero, not as a fill value
    array = create_store(tmp_path / "states.zarr", 3, len(WORDS), 5, "float32", 3, None, {"layer_names": NAMES})
    array[:] = values
    tokens = pl.DataFrame({"seq_id": [0] * len(WORDS), "position": np.arange(len(WORDS)), "token": WORDS})
    tokens.write_parquet(tmp_path / "tokens.parquet")
    return tmp_path, values


def test_open_zarr_gives_named_dims_and_coords(store):
    path, values = store
    ds = xr.open_zarr(path / "states.zarr", consolidated=False)
    assert ds["hidden"].dims == ("layer", "token", "d")
    assert ds["layer"].values.tolist() == [0, 1, 2] and ds["layer_name"].values.tolist() == NAMES
    assert ds["token"].values.tolist() == list(range(len(WORDS)))
    np.testing.assert_array_equal(ds["hidden"].values, values)
    np.testing.assert_array_equal(ds["hidden"].sel(layer=2).values, open_hidden(path / "states.zarr")[2])


def test_select_one_token_at_one_layer(store):
    path, values = store
    ds = xr.open_zarr(path / "states.zarr", consolidated=False)
    tokens = pl.read_parquet(path / "tokens.parquet").with_row_index("row")
    rows = tokens.filter(pl.col("token") == "the")["row"].to_numpy()
    the = ds["hidden"].sel(layer=1, token=rows)
    assert the.dims == ("token", "d") and the["token"].values.tolist() == [0, 4, 6]
    np.testing.assert_array_equal(the.values, values[1, [0, 4, 6]])
