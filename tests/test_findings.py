"""The claim rules of the findings page on small synthetic tables whose verdicts are known."""

from __future__ import annotations

import subprocess

import numpy as np
import polars as pl
import pytest
import yaml
from docutils.core import publish_parts
from runs import snakemake_command

from layergeom.analyses.registry import ANALYSES
from layergeom.findings import anisotropy, attention, massive, norm_variance, posctx
from layergeom.findings.page import frame, landing_page, markdown_page
from layergeom.findings.verdicts import FAILS, HOLDS, NOT_APPLICABLE, spearman


def depth(n: int) -> dict:
    return {"layer": list(range(n)), "relative_depth": [i / (n - 1) for i in range(n)]}


def nv_table(slopes, r2, m_share, vw_over_v, final_norm=False) -> pl.DataFrame:
    n = len(slopes)
    return pl.DataFrame(
        {
            "variant": ["all"] * n,
            **depth(n),
            "after_final_norm": [final_norm and i == n - 1 for i in range(n)],
            "slope": slopes,
            "r2": r2,
            "whole_m_share": m_share,
            "whole_vw_over_v": vw_over_v,
            "m_share": m_share[::-1],  # the types in the count range: reported, not judged
            "vw_over_v": vw_over_v,
        }
    )


def verdicts(rows, model="m") -> dict[str, str]:
    return {row.claim.key: row.verdict for row in rows if row.model == model}


def test_norm_variance_rules():
    good = nv_table(
        [0.2, -0.5, -1.0, -0.6, 0.1],
        [0.1, 0.5, 0.8, 0.4, 0.1],
        [0.1, 0.2, 0.3, 0.4, 0.0],
        [0.5, 0.6, 0.7, 0.8, 0.1],
        True,
    )
    bad = nv_table(
        [0.2, -0.5, -0.4, -0.6, 0.1], [0.9, 0.9, 0.9, 0.9, 0.9], [0.4, 0.3, 0.2, 0.1, 0.0], [0.8, 0.7, 0.6, 0.5, 0.4]
    )
    none = nv_table([np.nan] * 2, [np.nan] * 2, [0.1, 0.2], [0.1, 0.2])
    rows = norm_variance.findings({("m", "c"): good, ("b", "c"): bad, ("n", "c"): none}, "sel")
    assert verdicts(rows) == {"nv_slope": HOLDS, "nv_m_share": HOLDS, "nv_vw_over_v": HOLDS}
    assert verdicts(rows, "b") == {"nv_slope": FAILS, "nv_m_share": FAILS, "nv_vw_over_v": FAILS}
    assert verdicts(rows, "n") == {
        "nv_slope": NOT_APPLICABLE,
        "nv_m_share": NOT_APPLICABLE,
        "nv_vw_over_v": NOT_APPLICABLE,
    }
    assert all("variant all" in row.selection and row.selection.startswith("sel") for row in rows)


def aniso_table(kind: str, shares, ids=None, twonn=None, cos=None) -> pl.DataFrame:
    n = len(shares)
    return pl.DataFrame(
        {
            **depth(n),
            "kind": kind,
            "after_final_norm": [False] * n,
            "sigma1_share": shares,
            "sl_id": ids or [1.0] * n,
            "twonn_id": twonn or [1.0] * n,
            "mean_cos": cos or [0.1] * n,
        }
    )


def test_anisotropy_rules():
    tables = {
        ("m", "c"): aniso_table("decoder", [0.1, 0.3, 0.6, 0.3, 0.2]),
        ("late", "c"): aniso_table("decoder", [0.1, 0.2, 0.3, 0.4, 0.6]),
        ("plateau", "c"): aniso_table("decoder", [0.1, 0.5, 0.6, 0.6, 0.55]),  # interior peak, no bell
        ("enc", "c"): aniso_table("encoder", [0.05, 0.08, 0.1, 0.07, 0.06]),
        ("steep", "c"): aniso_table("encoder", [0.05, 0.3, 0.1, 0.07, 0.06]),
    }
    up_down = [
        (0, aniso_table("decoder", [0.1] * 3, [10, 10, 10], [3.0, 3.0, 3.0])),
        (4, aniso_table("decoder", [0.1] * 3, [10, 14, 12], [3.0, 2.0, 3.0])),
    ]
    up_down.append((16, aniso_table("decoder", [0.1] * 3, [10, 11, 10], [3.0, 2.5, 3.0])))
    # [SL]'s estimate falls while TwoNN rises and falls: the claim is judged on sl_id
    falls = [(s, aniso_table("decoder", [0.1] * 3, [10 - s, 9 - s, 8 - s], [3.0 + (s == 1)] * 3)) for s in (0, 1, 2)]
    # one layer rises and falls by 30%, the layer mean by 7%: judged on the mean, it does not hold
    one = [(s, aniso_table("decoder", [0.1] * 3, ids)) for s, ids in ((0, [10.0] * 3), (4, [10.0, 13.0, 9.1]))]
    one.append((16, aniso_table("decoder", [0.1] * 3, [10.0] * 3)))
    training = {("m", "c"): up_down, ("f", "c"): falls, ("two", "c"): falls[:2], ("one", "c"): one}
    rows = anisotropy.findings(tables, training, "sel", "first 4096", {})
    assert verdicts(rows) == {"sl_decoder_peak": HOLDS, "sl_encoder_flat": NOT_APPLICABLE, "sl_id_training": HOLDS}
    assert verdicts(rows, "late") == {"sl_decoder_peak": FAILS, "sl_encoder_flat": NOT_APPLICABLE}
    plateau = next(r for r in rows if r.model == "plateau" and r.claim.key == "sl_decoder_peak")
    assert plateau.verdict == FAILS and plateau.value == pytest.approx(1 - 0.55 / 0.6) and plateau.threshold == 0.2
    assert verdicts(rows, "enc") == {"sl_decoder_peak": NOT_APPLICABLE, "sl_encoder_flat": HOLDS}
    assert verdicts(rows, "steep")["sl_encoder_flat"] == FAILS
    assert verdicts(rows, "f") == {"sl_id_training": FAILS}
    assert verdicts(rows, "two") == {"sl_id_training": NOT_APPLICABLE}
    assert verdicts(rows, "one") == {"sl_id_training": FAILS}
    m = next(r for r in rows if r.model == "m" and r.claim.key == "sl_id_training")
    assert m.measured == "layer mean 10.00 (step 0), largest 12.00 (step 4), 10.33 (step 16); TwoNN 3.00, 2.67, 2.83"
    assert m.value == pytest.approx(12 / (31 / 3) - 1) and m.layer is None


def test_byte_level_rule():
    """Middle-layer mean cosine (relative depth 0.5 of 5 layers: layer 2) against step 0 and the BPE family."""
    cos = lambda mid: aniso_table("decoder", [0.1] * 5, cos=[0.9, 0.9, mid, 0.9, 0.9])  # noqa: E731
    bpe = [(0, cos(0.1)), (256, cos(0.6))]
    training = {
        ("byte", "c"): [(0, cos(0.1)), (256, cos(0.35))],  # 0.35 >= max(0.1 + 0.1, 0.5 * 0.6)
        ("flat", "c"): [(0, cos(0.1)), (256, cos(0.15))],  # not 0.1 above its step 0
        ("weak", "c"): [(0, cos(0.1)), (256, cos(0.25))],  # above step 0, below half of BPE's 0.6
        ("late", "c"): [(4, cos(0.1)), (256, cos(0.5))],  # no step 0
        ("bpe", "c"): bpe,
        ("alone", "other"): [(0, cos(0.1)), (256, cos(0.5))],  # no BPE family on its corpus
    }
    families = {f: run("gpt2", 257) for f in ("byte", "flat", "weak", "late", "alone")} | {"bpe": run("gpt2", 4096)}
    rows = [r for r in anisotropy.findings({}, training, "sel", "s", families) if r.claim.key == "as_byte_level"]
    got = {r.model: r.verdict for r in rows}
    assert got == {"byte": HOLDS, "flat": FAILS, "weak": FAILS, "late": NOT_APPLICABLE, "alone": NOT_APPLICABLE}
    byte = next(r for r in rows if r.model == "byte")
    assert byte.value == pytest.approx(0.35) and byte.threshold == pytest.approx(0.3)
    assert "BPE bpe 0.600 at step 256" in byte.measured


def run(architecture: str, vocab_size: int) -> dict:
    return {"architecture": architecture, "vocab_size": vocab_size}


def test_vision_rule():
    """A ViT family against its step 0 and a BPE family on any corpus; without a BPE family it is not applicable."""
    cos = lambda mid: aniso_table("encoder", [0.1] * 5, cos=[0.9, 0.9, mid, 0.9, 0.9])  # noqa: E731
    training = {
        ("vit", "digits"): [(0, cos(0.2)), (256, cos(0.45))],  # 0.45 >= max(0.2 + 0.1, 0.5 * 0.6)
        ("vitflat", "digits"): [(0, cos(0.2)), (256, cos(0.25))],  # not 0.1 above its step 0
        ("bpe", "text"): [(0, cos(0.1)), (256, cos(0.6))],
    }
    families = {"vit": run("vit", 4096), "vitflat": run("vit", 4096), "bpe": run("gpt2", 4096)}
    rows = [r for r in anisotropy.findings({}, training, "sel", "s", families) if r.claim.key == "as_vision"]
    assert {r.model: r.verdict for r in rows} == {"vit": HOLDS, "vitflat": FAILS}
    vit = next(r for r in rows if r.model == "vit")
    assert vit.value == pytest.approx(0.45) and vit.threshold == pytest.approx(0.3) and vit.corpus == "digits"
    alone = anisotropy.findings({}, {("vit", "digits"): training[("vit", "digits")]}, "sel", "s", families)
    assert {r.claim.key: r.verdict for r in alone if r.model == "vit"}["as_vision"] == NOT_APPLICABLE


def heads(q: float, k: float, entropy: float) -> pl.DataFrame:
    return pl.DataFrame(
        {"mean_q_norm": [q, q], "mean_k_norm": [k, k], "mean_entropy": [entropy] * 2, "uniform_entropy": [2.0, 2.0]}
    )


def test_attention_rules():
    growing = [(s, heads(1 + s, 2 + s, 2 - 0.1 * s)) for s in (0, 4, 16)]
    flat = [(s, heads(1.0, 3.0 - s, 1.0)) for s in (0, 4, 16)]
    drift = pl.DataFrame(  # block 1 reads the drift; block 2 is not judged
        {
            "block_type": ["gpt2"] * 6 + ["bert"] * 6,
            "block": ([1] * 3 + [2] * 3) * 2,
            "drift": [0.0, 1.0, 10.0] * 4,
            "mean_entropy": [3.0, 2.9, 2.0, 3.0, 3.0, 3.0] + [3.0, 2.5, 2.4, 3.0, 1.0, 0.5],
        }
    )
    rows = attention.findings({("m", "c"): growing, ("flat", "c"): flat, ("one", "c"): growing[:1]}, drift, "sel")
    assert verdicts(rows) == {"as_qk_norms": HOLDS, "as_sharpening": HOLDS}
    assert verdicts(rows, "flat") == {"as_qk_norms": FAILS, "as_sharpening": NOT_APPLICABLE}
    assert verdicts(rows, "one") == {"as_qk_norms": NOT_APPLICABLE, "as_sharpening": NOT_APPLICABLE}
    assert verdicts(rows, "untrained gpt2 blocks") == {"as_drift": HOLDS}
    assert verdicts(rows, "untrained bert blocks") == {"as_drift": FAILS}  # 20% lower: short of 25%
    bert = next(r for r in rows if r.model == "untrained bert blocks")
    assert bert.value == pytest.approx(0.2) and bert.threshold == 0.25


def pc_table(rank, smooth, within, across, coherence, baseline) -> pl.DataFrame:
    n = 5
    return pl.DataFrame(
        {
            **depth(n),
            "after_final_norm": [False] * n,
            "pos_stable_rank": [rank] * n,
            "smoothness_lowfreq": [smooth] * n,
            "ctx_within_cos": [within] * n,
            "ctx_across_cos": [across] * n,
            "incoherence_mean": [coherence] * n,
            "random_baseline_mean": [baseline] * n,
        }
    )


def test_posctx_rules():
    tables = {
        ("m", "c"): pc_table(1.9, 0.95, 0.44, 0.10, 0.05, 0.04),
        ("b", "c"): pc_table(9.0, 0.5, 0.30, 0.29, 0.2, 0.04),
        ("n", "c"): pc_table(2.0, 0.95, np.nan, np.nan, 0.05, 0.04),
    }
    rows = posctx.findings(tables, "sel")
    assert verdicts(rows) == dict.fromkeys(("pc_rank", "pc_topics", "pc_incoherence", "pc_smooth"), HOLDS)
    assert verdicts(rows, "b") == dict.fromkeys(("pc_rank", "pc_topics", "pc_incoherence", "pc_smooth"), FAILS)
    assert verdicts(rows, "n")["pc_topics"] == NOT_APPLICABLE


def ma_table(kind: str, max_abs, median_abs, final_norm: bool = False) -> pl.DataFrame:
    n = len(max_abs)
    return pl.DataFrame(
        {
            **depth(n),
            "kind": kind,
            "after_final_norm": [final_norm and i == n - 1 for i in range(n)],
            "max_abs": max_abs,
            "max_dim": [3] * n,
            "max_position": [0] * n,
            "median_abs": median_abs,
        }
    ).with_columns(ratio=pl.col("max_abs") / pl.col("median_abs"))


def test_massive_rule():
    tables = {
        ("m", "c"): ma_table("decoder", [5.0, 2500.0, 2600.0, 50.0], [1.0, 0.5, 0.5, 1.0]),
        ("flat", "c"): ma_table("decoder", [5.0, 150.0, 90.0], [1.0, 1.0, 1.0]),  # over 100, ratio 150
        ("small", "c"): ma_table("decoder", [5.0, 100.0, 9.0], [1e-4, 1e-5, 1e-4]),  # ratio 1e7, max_abs not > 100
        ("normed", "c"): ma_table("decoder", [5.0, 9.0, 5000.0], [1.0, 1.0, 1.0], final_norm=True),
        ("enc", "c"): ma_table("encoder", [5.0, 5000.0], [1.0, 1.0]),
    }
    rows = {row.model: row for row in massive.findings(tables, "sel")}
    assert rows["m"].verdict == HOLDS and rows["m"].layer == 2 and rows["m"].value == 5200.0
    assert rows["m"].threshold == 1000.0 and rows["m"].measured.startswith("layer 2: max |x| 2600")
    assert rows["flat"].verdict == FAILS and rows["flat"].value == 150.0 and rows["flat"].margin == -850.0
    assert rows["small"].verdict == FAILS and rows["small"].value == 100.0 and rows["small"].margin < 0
    assert rows["normed"].verdict == FAILS and rows["normed"].layer == 1  # the final-norm layer is left out
    assert rows["enc"].verdict == NOT_APPLICABLE and "encoder" in rows["enc"].measured
    assert massive.is_massive(np.array([100.0, 100.5, 200.0]), np.array([1e4, 1e3, 999.0])).tolist() == [
        False,
        True,
        False,
    ]


def test_spearman_matches_float64_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    rank = lambda v: np.argsort(np.argsort(v)).astype(np.float64)  # noqa: E731
    assert spearman(x, y) == pytest.approx(np.corrcoef(rank(x), rank(y))[0, 1], abs=1e-12)
    assert np.isnan(spearman([1, 2], [3, 4])) and np.isnan(spearman([1, 2, 3], [1, 1, 1]))


def test_pages_list_every_claim_and_row():
    rows = posctx.findings({("m", "c"): pc_table(1.9, 0.95, 0.44, 0.10, 0.05, 0.04)}, "sel")
    claims = [claim for analysis in ANALYSES.values() for claim in analysis.claims]
    table = frame(rows, claims)
    assert table.height == 4 and set(table["verdict"]) == {HOLDS}
    page = markdown_page(table, claims)
    assert len(claims) == 18 and all(claim.rule.replace("|", "\\|") in page for claim in claims)
    assert all(claim.quote.replace("|", "\\|") in page for claim in claims)
    assert all(claim.quote.endswith("(abstract)") or claim.quote.startswith("paraphrase") for claim in claims)
    landing = landing_page("intro", table, claims)
    assert "Findings\n========" in landing and "{{" not in landing
    assert "4 holds, 0 does not hold, 0 not applicable" in landing and "4 holds" in page


def test_landing_page_renders_without_a_docutils_message():
    rows = posctx.findings({("m", "c"): pc_table(1.9, 0.95, 0.44, 0.10, 0.05, 0.04)}, "sel")
    rows += norm_variance.findings(
        {("n_*x", "c_"): nv_table([-0.5, -0.71, -0.5], [0.9] * 3, [0.1] * 3, [0.2] * 3)}, "`a`"
    )
    claims = [claim for analysis in ANALYSES.values() for claim in analysis.claims]
    table = frame(rows, claims)
    assert any("|" in claim.text + claim.reference for claim in claims)  # |cos(pos, ctx)|: a substitution unescaped
    html = publish_parts(landing_page("intro", table, claims), writer="html", settings_overrides={"halt_level": 2})[
        "html_body"
    ]
    assert "system-message" not in html and html.count('class="holds"') >= 5
    assert "n_*x" in html and "|cos(pos, ctx)|" in html


def test_findings_are_data_with_value_threshold_and_margin():
    claims = [claim for analysis in ANALYSES.values() for claim in analysis.claims]
    near = nv_table([-0.5, -0.71, -0.5], [0.9] * 3, [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    far = nv_table([-0.5, -0.2, -0.5], [0.9] * 3, [0.3, 0.2, 0.1], [0.1, 0.2, 0.3])
    table = frame(norm_variance.findings({("near", "c"): near, ("far", "c"): far}, "sel"), claims)
    slope = table.filter(claim="nv_slope").sort("model")
    assert slope["verdict"].to_list() == [FAILS, HOLDS] and slope["layer"].to_list() == [1, 1]
    assert slope["value"].to_list() == [-0.2, -0.71] and slope["threshold"].to_list() == [-0.7, -0.7]
    assert slope["margin"].to_list() == pytest.approx([-0.5, 0.01]) and slope["near_threshold"].to_list() == [
        False,
        True,
    ]
    trend = table.filter(claim="nv_m_share").sort("model")
    assert trend["value"].to_list() == pytest.approx([-1.0, 1.0]) and trend["threshold"].to_list() == [0.5, 0.5]
    assert table.schema["value"] == pl.Float64 and table.schema["layer"] == pl.Int64


def test_findings_plan_reads_only_tables_that_exist_for_the_config(tmp_path, text_corpus, tiny_bert):
    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}}},
        "models": {"bert": {"source": str(tiny_bert)}},
        "drift": {"enabled": False},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        snakemake_command(tmp_path, "-n", "--forceall", "results/findings.md"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    plan = done.stdout + done.stderr
    assert "rule findings:" in plan and "posctx" not in plan and "drift" not in plan


def model_tables(kind: str, blocks: int, rng) -> dict[str, pl.DataFrame]:
    """Every analysis' depth table of one model with ``blocks`` blocks, its last block after the final norm."""
    n = blocks + 1
    final = [kind == "decoder" and i == blocks for i in range(n)]
    values = lambda: rng.uniform(0.05, 0.9, n).tolist()  # noqa: E731
    return {
        "norm_variance": nv_table(values(), values(), values(), values(), final_norm=kind == "decoder"),
        "anisotropy": aniso_table(kind, values()).with_columns(pl.Series("after_final_norm", final)),
        "massive": ma_table(kind, (10 ** rng.uniform(0, 4, n)).tolist(), values(), final_norm=kind == "decoder"),
        "posctx": pc_table(1.9, 0.95, 0.44, 0.10, 0.05, 0.04)
        .head(n)
        .with_columns(relative_depth=pl.col("layer") / blocks),
        "dimensions": pl.DataFrame(
            {"layer": range(n), "relative_depth": [i / blocks for i in range(n)], "top3_share": values()}
        ).with_columns(top1_share=pl.col("top3_share") / 2),
        "attention": pl.DataFrame(
            {
                "layer": [i for i in range(1, n) for _ in range(2)],
                **{c: rng.uniform(1, 2, 2 * blocks) for c in ("mean_q_norm", "mean_k_norm", "mean_entropy")},
                "uniform_entropy": [3.0] * (2 * blocks),
            }
        ),
        "linearity": pl.DataFrame(
            {
                "layer": range(blocks),
                "next_layer": range(1, n),
                "relative_depth": [i / blocks for i in range(blocks)],
                "after_final_norm": final[:-1],
                "next_after_final_norm": final[1:],
                "linearity": values()[1:],
                "kind": kind,
            }
        ),
    }


@pytest.mark.parametrize("seed", range(12))
def test_every_rule_gives_a_verdict_on_any_layer_subset(seed):
    """A stored subset of layers never crashes a rule; the decoder peak is the largest stored layer before the norm."""
    from layergeom.analyses.spec import Evidence

    rng = np.random.default_rng(seed)
    blocks = 4
    stored = sorted(rng.choice(blocks + 1, size=rng.integers(1, blocks + 2), replace=False).tolist())
    tables = {kind: model_tables(kind, blocks, rng) for kind in ("decoder", "encoder")}
    subset = {
        kind: {name: t.filter(pl.col("layer").is_in(stored)) for name, t in by_name.items()}
        for kind, by_name in tables.items()
    }
    for name, analysis in ANALYSES.items():
        if analysis.findings is None:
            continue
        depth_tables = {(kind, "c"): subset[kind][name] for kind in subset}
        training = {(kind, "c"): [(s, subset[kind][name]) for s in (0, 4, 16)] for kind in subset}
        notes = {"id_sample": "sample", "families": {"decoder": run("gpt2", 257), "encoder": run("vit", 4096)}}
        rows = analysis.findings(Evidence(depth_tables, training, "sel", None, notes))
        assert rows and all(row.verdict in (HOLDS, FAILS, NOT_APPLICABLE) for row in rows), (name, stored)
        for row in rows:  # the margin lies on the side of the verdict
            assert (row.verdict == NOT_APPLICABLE) == (row.margin is None), row
            assert row.margin is None or (row.margin >= 0) == (row.verdict == HOLDS), row
        assert all(row.claim in analysis.claims for row in rows)
    decoder = subset["decoder"]["anisotropy"]
    peak = next(
        r for r in anisotropy.findings({("d", "c"): decoder}, {}, "sel", "s", {}) if r.claim.key == "sl_decoder_peak"
    )
    before = decoder.filter(~pl.col("after_final_norm"))
    if before.height >= 2:
        best = before.sort("sigma1_share", descending=True)["layer"][0]
        assert f"at layer {best} " in peak.measured
    else:
        assert peak.verdict == NOT_APPLICABLE
