"""Massive activations: the exact streamed top entries and the |x| histogram against in-RAM float64 references,
order-free merges, the torch path, and the tables of a small store streamed in two shards."""

import math

import numpy as np
import polars as pl
import pytest
import torch
from runs import ROOT

from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.massive.histogram import (
    BINS,
    EDGES,
    RESOLUTION,
    AbsHistogram,
    bin_counts,
    flat_counts,
    key_table,
)
from layergeom.analyses.massive.merge import massive_tables
from layergeom.analyses.massive.top import TopEntries, candidates, device_candidates
from layergeom.analyses.spec import MergeJob
from layergeom.config import ConfigError, check_schema
from layergeom.io.store import create_store


def reference_top(values: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[float, int, int]]:
    """(value, row, dim) of the k largest |x|, ties by row then dim, by sorting every entry."""
    n, d = values.shape
    entries = [(values[i, j], int(rows[i]), j) for i in range(n) for j in range(d)]
    return sorted(entries, key=lambda e: (-abs(e[0]), e[1], e[2]))[:k]


def fed(kind, values: np.ndarray, rows: np.ndarray, cuts, to=lambda v: v):
    """An accumulator of ``kind`` fed ``values`` in the blocks between ``cuts``, one accumulator per block merged
    in a shuffled order."""
    bounds = [0, *cuts, len(values)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        part = kind()
        part.update(to(values[lo:hi]), rows[lo:hi])
        parts.append(part)
    order = np.random.default_rng(len(cuts)).permutation(len(parts))
    total = kind()
    for i in order:
        total.merge(parts[i])
    return total


def tied_values(n: int = 60, d: int = 7) -> np.ndarray:
    """Small integers with signs: many ties in |x|, and exact zeros."""
    return np.random.default_rng(0).integers(-6, 7, (n, d)).astype(np.float64)


@pytest.mark.parametrize("k", [1, 5, 100])
def test_top_entries_equal_the_sorted_reference_for_any_blocks(k):
    values, rows = tied_values(), np.arange(100, 160)
    want = reference_top(values, rows, k)
    states = []
    for cuts in ([], [1], [13, 14, 40], list(range(3, 60, 3))):
        acc = fed(lambda: TopEntries(k), values, rows, cuts)
        got = list(zip(*acc.finalize()))
        assert [(v, int(r), int(j)) for v, r, j in got] == want, cuts
        states.append(acc.state())
    for state in states[1:]:
        for key in state:
            np.testing.assert_array_equal(state[key], states[0][key])


def test_top_entries_of_blocks_with_more_rows_than_kept_equal_the_sorted_reference():
    """A first block of at least ``keep`` rows is searched above its keep-th largest row maximum."""
    values, rows = np.random.default_rng(3).standard_normal((300, 7)), np.arange(300)
    for cuts in ([], [150], [100, 260]):
        acc = fed(TopEntries, values, rows, cuts)
        assert [(v, int(r), int(j)) for v, r, j in zip(*acc.finalize())] == reference_top(values, rows, 100), cuts


def test_top_entries_torch_path_and_narrow_dtypes_equal_numpy():
    values = (np.random.default_rng(1).standard_normal((40, 9)) * 50).astype(np.float16)
    rows = np.arange(40)
    host = fed(TopEntries, values, rows, [7, 20])
    for to in (torch.from_numpy, lambda v: torch.from_numpy(v.astype(np.float32))):
        device = fed(TopEntries, values, rows, [7, 20], to)
        for key, value in host.state().items():
            np.testing.assert_array_equal(device.state()[key], value)
    assert np.abs(host.value).max() == np.abs(values.astype(np.float64)).max()


@pytest.mark.parametrize("m", [1, 5, 100])
def test_top_candidates_of_a_tensor_equal_the_host(m):
    """The tensor path (a GPU's, here run on the CPU) finds the candidates numpy does, ties included."""
    for values in (tied_values(), (np.random.default_rng(1).standard_normal((40, 9)) * 50).astype(np.float16)):
        for got, want in zip(device_candidates(torch.from_numpy(values), m), candidates(values, m)):
            np.testing.assert_array_equal(got, want)


def test_histogram_median_bin_holds_the_exact_median():
    rng = np.random.default_rng(2)
    values = rng.standard_normal((50, 11)) * 10.0 ** rng.uniform(-3, 3, (50, 1))
    values[3, 4] = 1e-12  # underflow
    values[5, 5] = 1e9  # overflow
    rows = np.arange(50)
    magnitudes = np.sort(np.abs(values).ravel())
    exact = magnitudes[math.ceil(magnitudes.size / 2) - 1]  # the lower median: the ceil(n/2)-th smallest
    accs = [fed(AbsHistogram, values, rows, cuts) for cuts in ([], [1, 2, 30], list(range(2, 50, 5)))]
    for acc in accs:
        np.testing.assert_array_equal(acc.counts, accs[0].counts)
    result = accs[0].finalize()
    assert result["n_entries"] == values.size and accs[0].counts[0] == 1 and accs[0].counts[BINS + 1] == 1
    assert result["median_lo"] <= exact < result["median_hi"]
    assert result["median_hi"] / result["median_lo"] == pytest.approx(1 + RESOLUTION)
    assert abs(math.log(result["median_abs"] / exact)) <= math.log(1 + RESOLUTION)
    np.testing.assert_array_equal(fed(AbsHistogram, values, rows, [9], torch.from_numpy).counts, accs[0].counts)


def test_histogram_bins_every_entry_by_its_edges():
    values = np.concatenate([EDGES[:5], EDGES[-3:], [0.0, -EDGES[7], np.nextafter(EDGES[9], 0)]])[None, :]
    acc = AbsHistogram()
    acc.update(values, np.zeros(1, np.int64))
    slots = np.repeat(np.arange(BINS + 2), acc.counts)
    want = [1, 2, 3, 4, 5, BINS - 1, BINS, BINS + 1, 0, 8, 9]
    assert sorted(slots.tolist()) == sorted(want)
    assert AbsHistogram().finalize()["n_entries"] == 0


def probes(dtype: str) -> list[np.ndarray]:
    """Magnitudes of ``dtype`` in groups: the smallest at or above every edge, one ulp below and above it, 0,
    denormals and extremes, and magnitudes spread over 20 decades."""
    floats = np.dtype(dtype)
    at = EDGES.astype(floats)
    at = np.where(at < EDGES, np.nextafter(at, floats.type(np.inf)), at)
    tiny = np.finfo(floats).smallest_subnormal
    extremes = np.array([0.0, tiny, 2 * tiny, np.finfo(floats).tiny, np.finfo(floats).max, np.inf], floats)
    rng = np.random.default_rng(5)
    spread = np.abs(rng.standard_cauchy(20000)) * 10.0 ** rng.uniform(-10, 10, 20000)
    spread = spread[spread < np.finfo(floats).max].astype(floats)
    return [at, np.nextafter(at, floats.type(0)), np.nextafter(at, floats.type(np.inf)), extremes, spread]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_histogram_counts_equal_a_binary_search_of_the_edges(dtype, kind):
    """The keys of |x|, moved up one at the edge inside a key's range, count what the binary search does, group by
    group (in the edge groups every entry has a slot of its own) and with either sign; ``torch`` runs the
    operations of the GPU path (here on the CPU)."""
    for group in probes(dtype):
        want = np.bincount(np.searchsorted(EDGES, group.astype(np.float64), side="right"), minlength=BINS + 2)
        for signed in (group, -group):
            got = flat_counts(torch.from_numpy(signed)) if kind == "torch" else bin_counts(signed)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_histogram_key_ranges_hold_at_most_one_edge(dtype):
    """What makes the keys exact: no key's range holds two edges, and the keys clipped at either end keep their
    slot (the first key is all underflow, the last all overflow)."""
    table = key_table(dtype)
    ints = np.dtype(f"int{8 * np.dtype(dtype).itemsize}")
    keys = (table.base >> table.shift) + np.arange(len(table.slot) + 1, dtype=ints)
    start = (keys << table.shift).view(dtype).astype(np.float64)
    assert (np.searchsorted(EDGES, start[1:], side="left") - table.slot <= 1).all()
    assert table.slot[0] == 0 and table.slot[-1] == BINS + 1 and not table.split[[0, -1]].any()
    np.testing.assert_array_equal(table.slot[table.runs], np.arange(BINS + 2))


def build_store(tmp_path, planted: float = 3000.0) -> tuple[pl.DataFrame, np.ndarray]:
    """A store of 3 layers x 4 sequences of 6 tokens, d = 8; layer 1 holds one massive entry at position 0."""
    n, d = 24, 8
    rng = np.random.default_rng(4)
    tokens = pl.DataFrame(
        {
            "seq_id": np.repeat(np.arange(4), 6),
            "position": np.tile(np.arange(6), 4),
            "token_id": rng.integers(0, 50, n),
            "token": [f"t{i}" for i in range(n)],
            "is_special": np.tile(np.arange(6) == 5, 4),
        }
    )
    tokens.write_parquet(tmp_path / "tokens.parquet")
    values = rng.standard_normal((3, n, d)).astype(np.float32)
    values[1, 12, 3] = -planted
    attrs = {"layer_names": ["embeddings", "block_1", "block_2"], "n_layers": 2, "kind": "decoder"}
    create_store(tmp_path / "states.zarr", 3, n, d, "float32", 5, None, attrs)[...] = values
    return tokens, values.astype(np.float64)


def test_tables_of_a_store_streamed_in_two_shards(tmp_path):
    tokens, values = build_store(tmp_path)
    selection = {"include_special": False, "exclude_first_position": False}
    parts = [tmp_path / f"{k}-of-2" for k in range(2)]
    for k, folder in enumerate(parts):
        run_stream_shard(
            tmp_path / "states.zarr", tmp_path / "tokens.parquet", folder, f"{k}-of-2", {"massive": selection}
        )
    job = MergeJob(tmp_path / "states.zarr", tmp_path / "tokens.parquet", parts, {}, {"top_k": 4}, selection)
    table, top = massive_tables(job)
    keep = ~tokens["is_special"].to_numpy()
    rows = np.flatnonzero(keep)
    for layer in range(3):
        want = reference_top(values[layer, keep], rows, 4)
        got = top.filter(layer=layer)
        assert list(zip(got["value"], got["row"], got["dim"])) == want
        assert got["position"].to_list() == tokens["position"].to_numpy()[[w[1] for w in want]].tolist()
        row = table.row(layer, named=True)
        magnitudes = np.sort(np.abs(values[layer, keep]).ravel())
        assert row["median_lo"] <= magnitudes[math.ceil(magnitudes.size / 2) - 1] < row["median_hi"]
        assert row["max_abs"] == abs(want[0][0]) and row["max_token"] == f"t{want[0][1]}"
        assert row["ratio"] == pytest.approx(row["max_abs"] / row["median_abs"])
        assert row["first_position_share"] == np.mean([tokens["position"][w[1]] == 0 for w in want])
    massive = table.row(1, named=True)
    assert massive["massive"] and massive["n_massive_top"] == 1 and massive["max_position"] == 0
    assert massive["max_dim"] == 3 and massive["max_token"] == "t12"
    assert table["massive"].to_list() == [False, True, False] and table["kind"].to_list() == ["decoder"] * 3


@pytest.mark.parametrize(
    ("top_k", "words"), [(0, "less than the minimum of 1"), (101, "greater than the maximum of 100")]
)
def test_top_k_out_of_range_is_refused_with_the_field_named(top_k, words):
    config = {
        "corpora": {"a": {"source": "text", "path": "x"}},
        "models": {"m": {"source": "x"}},
        "massive": {"top_k": top_k},
    }
    with pytest.raises(ConfigError, match=f"massive.top_k = {top_k}: .*{words}"):
        check_schema(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
