"""Layer to layer: the cross products of consecutive layers against float64 references, the linearity score against
LLM-Microscope's own function, linear CKA against its Gram-matrix form, and pair feeds streamed from a store."""

import numpy as np
import polars as pl
import pytest
import torch
from peers import microscope_functions

from layergeom.analyses.linearity.accumulate import NAME, feeds
from layergeom.analyses.linearity.merge import pair_table
from layergeom.analyses.linearity.metrics import pair_row
from layergeom.io.shards import shard_range
from layergeom.io.store import create_store, open_hidden
from layergeom.stats.protocol import load, merged, part_path, save
from layergeom.stats.scatter import CrossProduct, Scatter
from layergeom.stream.driver import Feed, stream_layers, stream_to_folder
from layergeom.stream.feeds import scatter_feed, scatter_name


def layers(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """h_l with one massive direction and h_next = h_l + a linear update + noise."""
    x = rng.normal(size=(n, d)) * np.r_[50.0, np.linspace(2.0, 0.2, d - 1)] + 3.0
    y = x + x @ rng.normal(size=(d, d)) * 0.2 + rng.normal(size=(n, d))
    return x, y


def blocks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-pass float64 S_xx, S_xy, S_yy."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    return xc.T @ xc, xc.T @ yc, yc.T @ yc


def fed(x: np.ndarray, y: np.ndarray, cuts) -> CrossProduct:
    """A CrossProduct fed the rows (x, y) in blocks split at ``cuts``."""
    acc = CrossProduct(x.shape[1])
    for rows in np.split(np.arange(len(x)), cuts):
        acc.update(np.hstack([x[rows], y[rows]]), rows)
    return acc


def test_cross_products_equal_two_pass_blocks_and_merge_in_any_order(tmp_path):
    rng = np.random.default_rng(0)
    x, y = layers(rng, 400, 9)
    want = blocks(x, y)[1][None]
    whole = fed(x, y, [37, 150, 151, 390])
    np.testing.assert_allclose(whole.finalize(), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    parts = [fed(x[rows], y[rows], [13]) for rows in np.split(rng.permutation(400), [90, 200, 333])]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        copies = [CrossProduct.from_state(parts[i].state()) for i in order]
        got = merged(copies).finalize()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    save(tmp_path / "part.npz", {NAME: whole})
    back = load(tmp_path / "part.npz", NAME, CrossProduct)
    np.testing.assert_array_equal(back.scatter, whole.scatter)
    with pytest.raises(KeyError, match="not a Scatter"):
        load(tmp_path / "part.npz", NAME, Scatter)


def test_linearity_is_llm_microscopes_procrustes_similarity():
    functions = microscope_functions()
    rng = np.random.default_rng(1)
    x, y = layers(rng, 300, 12)
    row = pair_row(*blocks(x, y))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert row["linearity"] == pytest.approx(functions.procrustes_similarity(tx, ty), abs=1e-6)
    # procrustes_similarity_centered(x, y) is procrustes_similarity(x, y - x) but, as shipped, ends with
    # `sim = float` and returns None; the residual-removed score is what it evidently intends.
    assert functions.procrustes_similarity_centered(tx, ty) is None
    assert row["linearity_residual"] == pytest.approx(functions.procrustes_similarity(tx, ty - tx), abs=1e-6)
    assert row["linearity_residual"] < row["linearity"]


def test_fewer_tokens_than_dimensions_fit_exactly():
    """Centered, n <= d rows are always a linear image of each other: the pseudo-inverse gives exactly 1 (LLM-Microscope
    inverts every singular value, the near-zero one of the centering included)."""
    x, y = layers(np.random.default_rng(2), 10, 20)
    row = pair_row(*blocks(x, y))
    assert row["linearity"] == pytest.approx(1.0, abs=1e-9)
    assert row["linearity_residual"] == pytest.approx(1.0, abs=1e-9)


def test_cka_equals_the_gram_matrix_form():
    rng = np.random.default_rng(3)
    x, y = layers(rng, 150, 8)
    centering = np.eye(150) - 1.0 / 150
    k, ell = centering @ x @ x.T @ centering, centering @ y @ y.T @ centering
    want = np.sum(k * ell) / (np.linalg.norm(k) * np.linalg.norm(ell))
    assert pair_row(*blocks(x, y))["cka"] == pytest.approx(want, rel=1e-10)


def test_pair_feeds_stream_layer_l_beside_the_next_stored_layer(tmp_path):
    rng = np.random.default_rng(4)
    n_layers, n_tokens, d = 4, 230, 5
    data = np.stack([layers(rng, n_tokens, d)[i % 2] * (1 + i) for i in range(n_layers)]).astype(np.float32)
    array = create_store(tmp_path / "s.zarr", n_layers, n_tokens, d, "float32", 32, None, {"layers": [0, 2, 3, 7]})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    mask = rng.random(n_tokens) < 0.8
    single = [Feed("scatter", rng.random(n_tokens) < 0.5, lambda layer, d: Scatter(d))]
    pair = [Feed(NAME, mask, lambda layer, d, later: CrossProduct(d, later), pairs="next")]
    ranges = [shard_range(n_tokens, 32, k, 3) for k in range(3)]
    parts = [dict(stream_layers(array, single + pair, token_range=r, block_tokens=64)) for r in ranges]
    alone = [dict(stream_layers(array, single, token_range=r, block_tokens=64)) for r in ranges]
    assert NAME not in parts[0][n_layers - 1]
    values = data.astype(np.float64)
    for layer in range(n_layers):
        scatter = merged(part[layer]["scatter"] for part in parts)
        np.testing.assert_array_equal(scatter.scatter, merged(part[layer]["scatter"] for part in alone).scatter)
        if layer + 1 < n_layers:
            got = merged(part[layer][NAME] for part in parts).finalize()[0]
            want = blocks(values[layer][mask], values[layer + 1][mask])[1]
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())

    tokens = pl.DataFrame({"position": np.arange(n_tokens) % 7, "is_special": ~mask})
    tokens.write_parquet(tmp_path / "tokens.parquet")
    selection = {"include_special": False, "exclude_first_position": False}
    analysis = feeds(tokens, selection)
    assert [feed.name for feed in analysis] == [NAME, scatter_name(mask)]
    folders = [tmp_path / "parts" / f"{k + 1}-of-3" for k in range(3)]
    for k, folder in enumerate(folders):
        stream_to_folder(array, analysis, folder, ranges[k], 64, folder.name)
    assert part_path(folders[0], n_layers - 1).exists()
    table = pair_table(tmp_path / "s.zarr", tmp_path / "tokens.parquet", folders, selection)
    assert table.columns[:2] == ["layer", "next_layer"]
    assert table["layer"].to_list() == [0, 2, 3] and table["next_layer"].to_list() == [2, 3, 7]
    want = pair_row(*blocks(values[1][mask], values[2][mask]))
    for column, value in want.items():
        assert table[column][1] == pytest.approx(value, rel=1e-9)


def test_the_analysis_feeds_one_pair_feed_and_the_shared_scatter_of_its_selection():
    tokens = pl.DataFrame({"position": [0, 1, 2, 0, 1], "is_special": [True, False, False, False, True]})
    cross, scatter = feeds(tokens, {"include_special": False, "exclude_first_position": True})
    assert cross.pairs == "next" and cross.mask.tolist() == [False, True, True, False, False]
    assert isinstance(cross.make(0, 8, 1), CrossProduct)
    assert scatter.name == scatter_feed(cross.mask).name and scatter.mask.tolist() == cross.mask.tolist()


def test_pair_feeds_read_each_layer_beside_the_next_and_the_last_alone(tmp_path, store_reads):
    data = np.random.default_rng(5).normal(size=(3, 64, 4)).astype(np.float32)
    array = create_store(tmp_path / "s.zarr", *data.shape, "float32", 32, None, {})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    reads = store_reads
    pair = [Feed(NAME, np.ones(64, dtype=bool), lambda layer, d, later: CrossProduct(d, later), pairs="next")]
    assert [sorted(accs) for _, accs in stream_layers(array, pair, block_tokens=32)] == [[NAME], [NAME], []]
    assert sorted(reads) == sorted([(0, 0), (0, 32)] + [(1, 0), (1, 32), (2, 0), (2, 32)] * 2)  # l beside l + 1


def pair_frame(kind: str, scores: list[float], final_norm: bool = True):
    """A synthetic pair table: consecutive layers 0..n, the last pair into a final norm when ``final_norm``."""
    n = len(scores)
    return pl.DataFrame(
        {
            "layer": range(n),
            "next_layer": range(1, n + 1),
            "relative_depth": [i / n for i in range(n)],
            "after_final_norm": [False] * n,
            "next_after_final_norm": [final_norm and i == n - 1 for i in range(n)],
            "linearity": scores,
            "kind": kind,
        }
    )


def test_tl_linear_takes_the_median_of_the_decoder_pairs_before_the_final_norm():
    from layergeom.findings.linearity import findings
    from layergeom.findings.verdicts import FAILS, HOLDS, NOT_APPLICABLE

    tables = {
        ("near", "c"): pair_frame("decoder", [0.93, 0.97, 0.99, 0.2]),  # the pair into the final norm left out
        ("far", "c"): pair_frame("decoder", [0.5, 0.85, 0.99], final_norm=False),
        ("enc", "c"): pair_frame("encoder", [0.99, 0.99]),
        ("one", "c"): pair_frame("decoder", [0.99]),
    }
    rows = {row.model: row for row in findings(tables, "sel")}
    assert rows["near"].verdict == HOLDS and rows["near"].value == pytest.approx(0.97)
    assert "lowest 0.930 (0 -> 1)" in rows["near"].measured
    assert rows["far"].verdict == FAILS and rows["far"].margin == pytest.approx(-0.05)
    assert rows["enc"].verdict == NOT_APPLICABLE and rows["one"].verdict == NOT_APPLICABLE
