"""Figures over training: per-layer head means are right, and every figure renders."""

import numpy as np
import polars as pl

from layergeom.analyses.dynamics.drift import drift_table
from layergeom.analyses.dynamics.plots import drift_figure, loss_figure, over_training, per_layer_over_steps
from layergeom.plotting import save


def _heads(step: int) -> pl.DataFrame:
    rng = np.random.default_rng(step)
    layer, head = np.divmod(np.arange(6), 2)
    return pl.DataFrame({"step": step, "layer": layer + 1, "head": head, "qk_cos": rng.uniform(-1, 1, 6)})


def test_per_layer_values_are_head_means_in_step_order():
    tables = [_heads(s) for s in (16, 0, 4)]
    steps, layers, values = per_layer_over_steps(pl.concat(tables), "qk_cos")
    assert steps.tolist() == [0, 4, 16] and layers.tolist() == [1, 2, 3]
    for j, table in zip((2, 0, 1), tables):
        np.testing.assert_allclose(values[:, j], table["qk_cos"].to_numpy().reshape(3, 2).mean(1), rtol=1e-15)


def test_figures_render(tmp_path):
    norms = [(s, pl.DataFrame({"layer": [0, 1, 2], "mean_norm": [1.0, 10.0 * (s + 1), 200.0]})) for s in (0, 1, 8)]
    save(over_training(norms, ["mean_norm"], "norms"), tmp_path / "norms.png")
    save(over_training([(s, _heads(s)) for s in (0, 2)], ["qk_cos"], "attention"), tmp_path / "attention.png")
    loss = pl.DataFrame(
        {
            "step": [0, 1, 2],
            "loss": [None, 5.0, 4.0],
            "eval_loss": [6.0, 5.5, None],
            "lr": [None, 1e-3, 1e-3],
            "tokens": [0, 8, 16],
            "checkpoint": [True, True, False],
        }
    )
    save(loss_figure(loss, "run"), tmp_path / "loss.png")
    settings = {
        "blocks": ["gpt2"],
        "n_blocks": 1,
        "d_model": 8,
        "n_head": 2,
        "sequences": 2,
        "length": 4,
        "drift_min": 0.1,
        "drift_max": 10,
        "points": 3,
        "repeats": 2,
        "seed": 0,
    }
    save(drift_figure(drift_table(settings)), tmp_path / "drift.png")
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in ("norms", "attention", "loss", "drift"))
