"""The accumulator protocol, the stream driver, token shards and the stream job, against float64 references."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import zarr
from polars.testing import assert_frame_equal

from layergeom.analyses.anisotropy import accumulate as anisotropy
from layergeom.analyses.dimensions.accumulate import UnitSquares
from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.massive.histogram import AbsHistogram
from layergeom.analyses.massive.top import TopEntries
from layergeom.analyses.norm_variance import accumulate as norm_variance
from layergeom.analyses.posctx import accumulate as posctx
from layergeom.analyses.posctx.design import grid_design
from layergeom.analyses.registry import kinds
from layergeom.analyses.summary import accumulate as summary
from layergeom.analyses.summary.merge import summary_table
from layergeom.io.atomic import write_parquet
from layergeom.io.shards import SHARD_PATTERN, parse_shard, shard_ids, shard_range
from layergeom.io.store import create_store, open_hidden
from layergeom.stats.moments import GroupedMoments
from layergeom.stats.protocol import Accumulator, kind_of, load, load_merged, merged, part_path, save
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import CrossProduct, Scatter, UnitSum
from layergeom.stream.driver import Feed, stream_layers
from layergeom.stream.feeds import scatter_feed, scatter_name
from layergeom.stream.selection import token_mask

RTOL = 1e-12
SPECIALS_OUT = {"include_special": False, "exclude_first_position": False}


def contexts(n_ctx: int, length: int, seed: int = 0) -> pl.DataFrame:
    """A contexts-mode token table: ``n_ctx`` sequences of ``length`` tokens, a special token at position 0."""
    rng = np.random.default_rng(seed)
    seq = np.repeat(np.arange(n_ctx), length)
    pos = np.tile(np.arange(length), n_ctx)
    ids = np.where(pos == 0, 0, rng.integers(1, 20, size=seq.size))
    return pl.DataFrame(
        {
            "seq_id": seq,
            "position": pos,
            "token_id": ids,
            "token": [f"t{i}" for i in ids],
            "is_special": pos == 0,
            "topic": ["sport" if s % 2 else "tech" for s in seq],
        }
    )


def states(rng: np.random.Generator, n_layers: int, n_tokens: int, d: int) -> np.ndarray:
    """float32 hidden states with a per-layer drift and an uneven spectrum."""
    drift = rng.standard_normal((n_layers, 1, d)) * np.arange(1, n_layers + 1)[:, None, None]
    return (drift + rng.standard_normal((n_layers, n_tokens, d)) * np.linspace(2.0, 0.2, d)).astype(np.float32)


def make_store(path, data: np.ndarray, chunk: int) -> zarr.Array:
    """A real store holding ``data``, reopened read-only."""
    array = create_store(path, *data.shape, str(data.dtype), chunk, None, {"n_layers": data.shape[0] - 1})
    array[:] = data
    return open_hidden(path)


def mean_cosine(x: np.ndarray) -> float:
    """Mean cosine over ordered pairs i != j of the nonzero rows, by forming every pair."""
    norms = np.linalg.norm(x, axis=1)
    u = x[norms > 0] / norms[norms > 0, None]
    gram = u @ u.T
    return float((gram.sum() - np.trace(gram)) / (len(u) * (len(u) - 1)))


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal to RTOL relative, entries near zero judged against the largest one."""
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max(initial=0.0))


# One token table and one set of float64 vectors for the protocol tests.
TOKENS = contexts(24, 10)
D = 5
X = states(np.random.default_rng(1), 1, TOKENS.height, D)[0].astype(np.float64)
X[7] = 0.0  # no direction: unit sums skip it
MASK = np.random.default_rng(2).random(TOKENS.height) < 0.8
MASK[7] = True
SAMPLE_MASK = np.random.default_rng(3).random(TOKENS.height) < 0.3
KEYS = norm_variance.type_keys(TOKENS["token_id"].to_numpy(), TOKENS["position"].to_numpy())
DESIGN = grid_design(TOKENS, **SPECIALS_OUT)
CENTER = X[MASK].mean(axis=0) + 0.1
SCALE = np.linspace(0.5, 2.0, D)


def check_norms(acc: summary.NormSums, rows: np.ndarray) -> None:
    """Count, mean norm and mean squared norm."""
    got, sq = acc.finalize(), np.sum(X[rows] ** 2, axis=1)
    assert got["n_tokens"] == len(rows)
    assert got["mean_norm"] == pytest.approx(np.sqrt(sq).mean(), rel=RTOL)
    assert got["mean_sq_norm"] == pytest.approx(sq.mean(), rel=RTOL)


def check_moments(acc: GroupedMoments, rows: np.ndarray) -> None:
    """Per key: ids, counts, means and Q, M, V of a two-pass reference."""
    got, keys = acc.finalize(), KEYS[rows]
    np.testing.assert_array_equal(got.ids, np.unique(keys))
    groups = [X[rows][keys == key] for key in got.ids]
    np.testing.assert_array_equal(got.n, [len(g) for g in groups])
    means = np.stack([g.mean(axis=0) for g in groups])
    assert_close(got.mean, means)
    q, m, v = got.qmv()
    np.testing.assert_allclose(q, [np.mean(np.sum(g * g, axis=1)) for g in groups], rtol=RTOL, atol=0)
    np.testing.assert_allclose(m, np.sum(means * means, axis=1), rtol=RTOL, atol=0)
    np.testing.assert_allclose(
        v, [np.mean(np.sum((g - g.mean(axis=0)) ** 2, axis=1)) for g in groups], rtol=RTOL, atol=0
    )


def check_units(acc: UnitSum, rows: np.ndarray) -> None:
    """Count of nonzero rows and the pairwise mean cosine (around the center and scaled, if set)."""
    x = X[rows] if acc.center is None else X[rows] - CENTER
    x = x if acc.scale is None else x * SCALE
    assert acc.count == np.count_nonzero(np.any(x != 0, axis=1))
    assert acc.finalize() == pytest.approx(mean_cosine(x), rel=RTOL)


def check_unit_squares(acc: UnitSquares, rows: np.ndarray) -> None:
    """Per dimension, the mean of u_i v_i over every ordered pair of distinct unit vectors; they sum to the cosine."""
    norms = np.linalg.norm(X[rows], axis=1)
    u = X[rows][norms > 0] / norms[norms > 0, None]
    pairs = [np.outer(u[:, i], u[:, i]) for i in range(D)]
    want = np.array([(p.sum() - np.trace(p)) / (len(u) * (len(u) - 1)) for p in pairs])
    assert acc.count == len(u)
    assert_close(acc.finalize(), want)
    assert acc.finalize().sum() == pytest.approx(mean_cosine(X[rows]), rel=RTOL)


def check_scatter(acc: Scatter, rows: np.ndarray) -> None:
    """Count, mean, two-pass scatter and its eigenvalues."""
    x = X[rows]
    centered = x - x.mean(axis=0)
    reference = centered.T @ centered
    assert acc.count == len(rows)
    assert_close(acc.mean, x.mean(axis=0))
    assert_close(acc.scatter, reference)
    assert_close(acc.finalize(), np.linalg.eigvalsh(reference / len(rows))[::-1])


def check_cross(acc: CrossProduct, rows: np.ndarray) -> None:
    """Count, mean and the two-pass cross products S_xy, x the first D // 2 columns, y the next D // 2."""
    half = D // 2
    centered = X[rows, : 2 * half] - X[rows, : 2 * half].mean(axis=0)
    assert acc.count == len(rows)
    assert_close(acc.mean, X[rows, : 2 * half].mean(axis=0))
    assert_close(acc.finalize(), (centered[:, :half].T @ centered[:, half:])[None])


def check_posctx(acc: posctx.PosCtxSums, rows: np.ndarray) -> None:
    """Complete grid counts and per-position and per-context sums."""
    n_ctx, n_pos = DESIGN.shape
    pos_sum, ctx_sum = np.zeros((n_pos, D)), np.zeros((n_ctx, D))
    np.add.at(pos_sum, DESIGN.pos_index[rows], X[rows])
    np.add.at(ctx_sum, DESIGN.ctx_index[rows], X[rows])
    np.testing.assert_array_equal(acc.pos_count, np.full(n_pos, n_ctx))
    np.testing.assert_array_equal(acc.ctx_count, np.full(n_ctx, n_pos))
    assert_close(acc.pos_sum, pos_sum)
    assert_close(acc.ctx_sum, ctx_sum)


def check_sample(acc: PointSample, rows: np.ndarray) -> None:
    """The rows' vectors, bit for bit, in row order."""
    np.testing.assert_array_equal(acc.finalize(), X[rows])


def check_top(acc: TopEntries, rows: np.ndarray) -> None:
    """The KEEP entries of largest |x|, by |x| descending, then row, then dimension."""
    entries = sorted((-abs(X[r, i]), r, i) for r in rows for i in range(D))[: acc.keep]
    value, row, dim = acc.finalize()
    np.testing.assert_array_equal(row, [r for _, r, _ in entries])
    np.testing.assert_array_equal(dim, [i for _, _, i in entries])
    np.testing.assert_array_equal(value, [X[r, i] for _, r, i in entries])


def check_histogram(acc: AbsHistogram, rows: np.ndarray) -> None:
    """Every entry counted once, the exact lower median inside the reported bin."""
    values = np.sort(np.abs(X[rows]).ravel())
    median = acc.finalize()
    assert median["n_entries"] == values.size
    assert median["median_lo"] <= values[(values.size + 1) // 2 - 1] < median["median_hi"]


#: case -> (empty accumulator, rows it is fed, check against the float64 reference of those rows)
CASES: dict[str, tuple[Callable[[], Accumulator], np.ndarray, Callable]] = {
    "NormSums": (lambda: summary.NormSums(), MASK, check_norms),
    "GroupedMoments": (lambda: GroupedMoments(D, KEYS), MASK, check_moments),
    "UnitSum": (lambda: UnitSum(D), MASK, check_units),
    "UnitSum centered": (lambda: UnitSum(D, CENTER), MASK, check_units),
    "UnitSum standardized": (lambda: UnitSum(D, CENTER, SCALE), MASK, check_units),
    "UnitSquares": (lambda: UnitSquares(D), MASK, check_unit_squares),
    "Scatter": (lambda: Scatter(D), MASK, check_scatter),
    "CrossProduct": (lambda: CrossProduct(D // 2), MASK, check_cross),
    "PosCtxSums": (lambda: posctx.PosCtxSums(*DESIGN.shape, D, DESIGN), DESIGN.mask, check_posctx),
    "PointSample": (lambda: PointSample(D), SAMPLE_MASK, check_sample),
    "TopEntries": (lambda: TopEntries(7), MASK, check_top),
    "AbsHistogram": (lambda: AbsHistogram(), MASK, check_histogram),
}


def one_pass(case: str) -> tuple[Accumulator, np.ndarray]:
    """The accumulator of a case fed all its rows in one update, and those rows."""
    make, mask, _ = CASES[case]
    acc, rows = make(), np.flatnonzero(mask)
    acc.update(X[rows], rows)
    return acc, rows


def assert_same_bits(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Same keys, and arrays of the same dtype, shape and bytes."""
    assert got.keys() == want.keys()
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), key


def test_every_registered_kind_has_a_case():
    assert {type(make()).__name__ for make, _, _ in CASES.values()} == set(kinds())


def test_save_load_is_bit_exact(tmp_path):
    full = {f"full/{case}": one_pass(case)[0] for case in CASES}
    empty = {f"empty/{case}": make() for case, (make, _, _) in CASES.items()}
    save(tmp_path / "part.npz", full | empty)
    for name, acc in (full | empty).items():
        back = load(tmp_path / "part.npz", name, type(acc))
        assert type(back) is type(acc)
        assert_same_bits(back.state(), acc.state())
    for case, (_, mask, check) in CASES.items():
        check(load(tmp_path / "part.npz", f"full/{case}", type(CASES[case][0]())), np.flatnonzero(mask))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES)
def test_random_shards_merged_in_random_order_equal_one_pass(tmp_path, case, seed):
    make, mask, check = CASES[case]
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(mask)
    shuffled = rng.permutation(rows)
    cuts = np.sort(rng.choice(np.arange(1, len(rows)), size=int(rng.integers(2, 7)), replace=False))
    shards = [*np.split(shuffled, cuts), shuffled[:0]]  # and a shard that selected no token
    for i, shard in enumerate(shards):
        acc = make()
        for block in np.array_split(shard, int(rng.integers(1, 4))):
            acc.update(X[block], block)
        save(tmp_path / f"{i}.npz", {case: acc})
    kind = type(CASES[case][0]())
    total = merged(load(tmp_path / f"{i}.npz", case, kind) for i in rng.permutation(len(shards)))
    check(total, rows)


def test_one_read_per_block_for_all_feeds_and_one_shared_scatter(tmp_path, monkeypatch, store_reads):
    tokens = contexts(12, 8)
    data = states(np.random.default_rng(4), 3, tokens.height, 6)
    array = make_store(tmp_path / "s.zarr", data, 16)
    feeds = [
        *anisotropy.feeds(tokens, SPECIALS_OUT),
        *posctx.feeds(tokens, SPECIALS_OUT),
        *summary.feeds(tokens, SPECIALS_OUT),
        *norm_variance.feeds(tokens, SPECIALS_OUT),
    ]
    mask = token_mask(tokens, **SPECIALS_OUT)
    design = grid_design(tokens, **SPECIALS_OUT)
    assert np.array_equal(design.mask, mask)
    assert {feed.name for feed in feeds if feed.name.startswith("scatter/")} == {scatter_name(mask)}

    reads = store_reads
    out = dict(stream_layers(array, feeds, block_tokens=32))
    assert sorted(reads) == [(layer, start) for layer in range(3) for start in (0, 32, 64)]
    reads.clear()
    dict(stream_layers(array, feeds, token_range=(32, 96), block_tokens=32))
    assert sorted(reads) == [(layer, start) for layer in range(3) for start in (32, 64)]
    monkeypatch.undo()

    n_pos = design.shape[1]
    for layer in range(3):
        x = data[layer].astype(np.float64)
        acc = out[layer]
        assert set(acc) == {feed.name for feed in feeds}
        shared, selected = acc[scatter_name(mask)], x[mask]
        centered = selected - selected.mean(axis=0)
        assert shared.count == mask.sum()  # fed once, not once per analysis
        assert_close(shared.mean, selected.mean(axis=0))
        assert_close(shared.scatter, centered.T @ centered)
        assert acc[anisotropy.UNITS].finalize() == pytest.approx(mean_cosine(selected), rel=RTOL)
        pos_sum = np.zeros((n_pos, x.shape[1]))
        np.add.at(pos_sum, design.pos_index[mask], selected)
        assert_close(acc[posctx.SUMS].pos_sum, pos_sum)
        assert acc[summary.NAME].finalize()["mean_sq_norm"] == pytest.approx(
            np.mean(np.sum(selected**2, axis=1)), rel=RTOL
        )
        assert acc[norm_variance.NAME].finalize().n.sum() == mask.sum()


def test_overlapping_scatters_compute_each_cell_of_tokens_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    data = states(rng, 2, 96, 5)
    array = make_store(tmp_path / "s.zarr", data, 16)
    masks = [rng.random(96) < 0.8, rng.random(96) < 0.6]  # three cells: in both, in the first only, the second only
    seen: list[int] = []
    block = Scatter.of

    def counted(values):
        seen.append(len(values))
        return block(values)

    monkeypatch.setattr(Scatter, "of", counted)
    out = dict(stream_layers(array, [scatter_feed(mask) for mask in masks], block_tokens=32))
    assert sum(seen) == 2 * (masks[0] | masks[1]).sum()  # every token of either scatter once per layer
    for layer in range(2):
        for mask in masks:
            x = data[layer].astype(np.float64)[mask]
            acc = out[layer][scatter_name(mask)]
            assert acc.count == mask.sum()
            assert_close(acc.mean, x.mean(axis=0))
            assert_close(acc.scatter, (x - x.mean(axis=0)).T @ (x - x.mean(axis=0)))


def test_one_name_for_two_token_sets_is_refused(tmp_path):
    tokens = contexts(6, 8)
    array = make_store(tmp_path / "s.zarr", states(np.random.default_rng(5), 2, tokens.height, 3), 16)
    units = anisotropy.feeds(tokens, SPECIALS_OUT)
    everything = posctx.feeds(tokens, {"include_special": True, "exclude_first_position": False})
    assert units[1].name != everything[1].name  # different tokens, different scatters
    assert len(dict(stream_layers(array, units + everything))) == 2
    clash = Feed(units[1].name, everything[1].mask, lambda layer, d: Scatter(d))
    with pytest.raises(ValueError, match="select different tokens"):
        next(stream_layers(array, [*units, clash]))


@pytest.mark.parametrize("dtype, bad", [("float32", np.nan), ("float32", -np.inf), ("float16", 1e5)])
def test_non_finite_states_are_refused_naming_the_layer(tmp_path, dtype, bad):
    data = np.random.default_rng(6).standard_normal((3, 40, 4))
    data[1, 17, 2] = bad
    with np.errstate(over="ignore"):
        array = make_store(tmp_path / "s.zarr", data.astype(dtype), 8)  # 1e5 overflows float16
    feeds = [Feed("units", np.ones(40, dtype=bool), lambda layer, d: UnitSum(d))]
    done = []
    message = r"layer 1 has non-finite hidden states in 1 token rows \(first: \[17\]\)"
    with pytest.raises(ValueError, match=message) as err:
        for layer, _ in stream_layers(array, feeds):
            done.append(layer)
    assert done == [0] and str(tmp_path / "s.zarr") in str(err.value)


@pytest.mark.parametrize(
    "n_tokens, step, n_shards",
    [(100, 10, 3), (103, 10, 4), (64, 16, 4), (1000, 7, 6), (5, 10, 3), (30, 8, 7), (0, 8, 2)],
)
def test_shard_ranges_partition_the_tokens(n_tokens, step, n_shards):
    ranges = [shard_range(n_tokens, step, k, n_shards) for k in range(n_shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n_tokens
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:]))  # contiguous, in order
    assert all(start <= stop and start % step == 0 for start, stop in ranges)
    blocks = [-(-(stop - start) // step) for start, stop in ranges]
    assert max(blocks) - min(blocks) <= 1  # balanced to one block
    for bad in (-1, n_shards):
        with pytest.raises(ValueError):
            shard_range(n_tokens, step, bad, n_shards)


@pytest.mark.parametrize("n_shards", [1, 3, 12])
def test_shard_names_round_trip(n_shards):
    names = shard_ids(n_shards)
    assert len(names) == n_shards
    for k, name in enumerate(names):
        assert re.fullmatch(SHARD_PATTERN, name) and parse_shard(name) == (k, n_shards)


@pytest.mark.parametrize("name", ["3-of-3", "0-of-0", "1of3", "a-of-3", "-1-of-3", "1-of-", " 1-of-3", "1-of-3x", ""])
def test_bad_shard_names_are_refused(name):
    with pytest.raises(ValueError):
        parse_shard(name)


def accumulator_names(path) -> set[str]:
    """Names of the accumulators saved in one partial file."""
    with np.load(path) as data:
        return {key.removesuffix("/kind") for key in data.files if key.endswith("/kind")}


def test_three_stream_shards_merged_equal_one(tmp_path):
    tokens = contexts(15, 8, seed=7)
    write_parquet(tokens, tmp_path / "tokens.parquet")
    make_store(tmp_path / "states.zarr", states(np.random.default_rng(8), 3, tokens.height, 6), 8)
    paths = (tmp_path / "states.zarr", tmp_path / "tokens.parquet")
    everything = {"include_special": True, "exclude_first_position": False}
    plans = {"summary": everything, "norm_variance": everything, "anisotropy": SPECIALS_OUT, "posctx": SPECIALS_OUT}
    one, three = tmp_path / "one", [tmp_path / f"part_{k}" for k in range(3)]
    run_stream_shard(*paths, one, "0-of-1", plans, block_tokens=16)
    for k, folder in enumerate(three):
        run_stream_shard(*paths, folder, f"{k}-of-3", plans, block_tokens=16)

    names = {
        summary.NAME,
        norm_variance.NAME,
        anisotropy.UNITS,
        posctx.SUMS,
        scatter_name(token_mask(tokens, **SPECIALS_OUT)),
    }
    counts = [load(part_path(folder, 0), summary.NAME, summary.NormSums).n for folder in three]
    assert min(counts) > 0 and sum(counts) == tokens.height
    for layer in range(3):
        assert all(accumulator_names(part_path(folder, layer)) == names for folder in [one, *three])
        for name in names:
            kind = kinds()[kind_of(part_path(one, layer), name)]
            got, want = load_merged(three, layer, name, kind).state(), load(part_path(one, layer), name, kind).state()
            assert got.keys() == want.keys()
            for key in want:
                if np.issubdtype(want[key].dtype, np.integer):
                    np.testing.assert_array_equal(got[key], want[key])
                else:
                    assert_close(got[key], want[key])
    assert_frame_equal(summary_table(paths[0], three), summary_table(paths[0], [one]), rel_tol=RTOL)


def test_stream_shard_refuses_a_token_table_of_another_store(tmp_path):
    tokens = contexts(4, 8)
    write_parquet(tokens.head(30), tmp_path / "tokens.parquet")
    make_store(tmp_path / "states.zarr", states(np.random.default_rng(9), 2, tokens.height, 3), 8)
    with pytest.raises(ValueError, match="30 rows"):
        run_stream_shard(
            tmp_path / "states.zarr", tmp_path / "tokens.parquet", tmp_path / "out", "0-of-1", {"summary": SPECIALS_OUT}
        )
