"""Per-layer statistics of the position matrix P (T' x d) and context matrix X (C x d) (docs/methods.md,
Position and context)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.linalg
from screenot import adaptiveHardThresholding

from layergeom.analyses.posctx.accumulate import Decomposition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Knobs of the per-layer statistics (config section ``posctx``)."""

    screenot_max_rank: int = 20
    ctx_components: int = 20
    smoothness_cutoff: int = 10
    seed: int = 0


def variance_shares(dec: Decomposition) -> tuple[float, float, float]:
    """Shares of sum ||h - mu||^2 due to pos, ctx and the residual (exact balanced-design identity)."""
    n_pos, n_ctx = dec.pos.shape[0], dec.ctx.shape[0]
    total = dec.ss_total
    pos = n_ctx * float(np.sum(dec.pos**2)) / total
    ctx = n_pos * float(np.sum(dec.ctx**2)) / total
    return pos, ctx, 1.0 - pos - ctx


def stable_rank(svals: np.ndarray) -> float:
    """sum s_i^2 / s_1^2."""
    sq = np.asarray(svals, dtype=np.float64) ** 2
    return float(sq.sum() / sq[0]) if sq.size and sq[0] > 0 else float("nan")


def screenot_bound(shape: tuple[int, int], max_rank: int) -> int:
    """Largest rank bound <= max_rank that ScreeNOT's imputation accepts (2k + 1 < min(shape))."""
    return int(min(max_rank, (min(shape) - 2) // 2))


def screenot_rank(matrix: np.ndarray, max_rank: int) -> int:
    """Rank estimated by ScreeNOT (imputation strategy) with rank bound ``max_rank``."""
    if max_rank < 1:
        raise ValueError(f"ScreeNOT needs a rank bound >= 1, got {max_rank} for shape {matrix.shape}")
    return int(adaptiveHardThresholding(matrix, k=max_rank, strategy="i")[-1])


def explained_ratio(svals: np.ndarray, rank: int) -> float:
    """(s_1 + ... + s_r) / sum s_i, singular values not squares (as the [PC] reference code)."""
    return float(svals[: int(rank)].sum() / svals.sum())


def top_energy_share(svals: np.ndarray, k: int = 2) -> float:
    """Share of squared singular values in the top k: variance of pos on its top k principal directions."""
    sq = svals**2
    return float(sq[:k].sum() / sq.sum())


def operator_norms(dec: Decomposition) -> tuple[float, float, float]:
    """Operator norms over all C*T' tokens of pos_t, of pos_t + ctx_c, and of h - mu.

    Stacked pos has Gram C P^T P; pos + ctx has Gram C P^T P + T' X^T X (cross terms vanish since
    pos and ctx sum to zero); h - mu has Gram equal to the streamed scatter matrix.
    """
    n_pos, n_ctx = dec.pos.shape[0], dec.ctx.shape[0]
    pos_op = np.sqrt(n_ctx) * np.linalg.norm(dec.pos, 2)
    mean_effect_op = np.linalg.norm(np.vstack([np.sqrt(n_ctx) * dec.pos, np.sqrt(n_pos) * dec.ctx]), 2)
    d = dec.scatter.shape[0]
    top = scipy.linalg.eigh(dec.scatter, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0]
    return float(pos_op), float(mean_effect_op), float(np.sqrt(max(top, 0.0)))


def hidden_operator_norm(dec: Decomposition) -> float:
    """Operator norm of the uncentered hidden states H (C*T' x d) of the grid.

    H^T H = scatter + N mu mu^T with N = C*T', so its top eigenvalue gives ||H||_op without the tokens.
    This is the denominator of the [PC] reference code's relative norm (its cvec is h - pos - mu,
    so pos + cvec + mu is h itself).
    """
    n_tokens = dec.pos.shape[0] * dec.ctx.shape[0]
    gram = dec.scatter + n_tokens * np.outer(dec.mu, dec.mu)
    d = gram.shape[0]
    top = scipy.linalg.eigh(gram, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0]
    return float(np.sqrt(max(top, 0.0)))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def normalized_gram(pos: np.ndarray) -> np.ndarray:
    """T' x T' cosine Gram matrix of the position vectors."""
    unit = unit_rows(pos)
    return unit @ unit.T


def dct_lowfreq_share(gram: np.ndarray, cutoff: int) -> float:
    """Share of squared orthonormal type-II 2-D DCT coefficients in the lowest cutoff x cutoff corner."""
    coef = scipy.fft.dctn(gram, type=2, norm="ortho") ** 2
    return float(coef[:cutoff, :cutoff].sum() / coef.sum())


def topic_codes(topics: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer code per context (-1 for no topic) and the sorted topic names."""
    names = sorted({t for t in topics if t is not None and t != ""})
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup.get(t, -1) for t in topics], dtype=np.int64), names


def project_top(x: np.ndarray, n_components: int) -> np.ndarray:
    """Coordinates of the rows of x on its top n principal directions (x is already centered)."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(n_components, s.size)
    return u[:, :k] * s[:k]


def topic_cosines(ctx: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """Mean |cos| over distinct context pairs of the same topic and of different topics (no-topic left out)."""
    keep = codes >= 0
    unit = unit_rows(ctx[keep])
    labels = codes[keep]
    cos = np.abs(unit @ unit.T)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    across = labels[:, None] != labels[None, :]
    within_mean = float(cos[same].mean()) if same.any() else float("nan")
    across_mean = float(cos[across].mean()) if across.any() else float("nan")
    return within_mean, across_mean


def cross_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|cos| between every row of a and every row of b."""
    return np.abs(unit_rows(a) @ unit_rows(b).T)


def random_incoherence(n_a: int, n_b: int, d: int, seed: int) -> tuple[float, float]:
    """Max and mean |cos| between n_a and n_b independent standard Gaussian vectors in R^d."""
    rng = np.random.default_rng(seed)
    cos = cross_cosines(rng.standard_normal((n_a, d)), rng.standard_normal((n_b, d)))
    return float(cos.max()), float(cos.mean())


def layer_metrics(dec: Decomposition, codes: np.ndarray, settings: Settings) -> dict[str, float | None]:
    """Every per-layer quantity of the posctx table for one layer."""
    n_pos, d = dec.pos.shape
    n_ctx = dec.ctx.shape[0]
    pos_share, ctx_share, resid_share = variance_shares(dec)
    svals = np.linalg.svd(dec.pos, compute_uv=False)
    bound = screenot_bound(dec.pos.shape, settings.screenot_max_rank)
    if bound >= 1:
        rank = screenot_rank(dec.pos, bound)
        explained = explained_ratio(svals, rank)
    else:
        log.warning("pos is %s: too small for ScreeNOT, rank left empty", dec.pos.shape)
        rank, explained = None, None
    pos_op, mean_effect_op, total_op = operator_norms(dec)
    hidden_op = hidden_operator_norm(dec)
    cutoff = min(settings.smoothness_cutoff, n_pos)
    within, across = topic_cosines(project_top(dec.ctx, settings.ctx_components), codes)
    within_raw, across_raw = topic_cosines(dec.ctx, codes)
    incoherence = cross_cosines(dec.pos, dec.ctx)
    base_max, base_mean = random_incoherence(n_pos, n_ctx, d, settings.seed)
    return {
        "pos_share": pos_share,
        "ctx_share": ctx_share,
        "resid_share": resid_share,
        "pos_stable_rank": stable_rank(svals),
        "pos_screenot_rank": rank,
        "screenot_bound": bound,
        "pos_explained_ratio": explained,
        "pos_rel_norm": pos_op / mean_effect_op,
        "pos_rel_norm_total": pos_op / total_op,
        "pos_rel_norm_hidden": pos_op / hidden_op,
        "pos_top2_share": top_energy_share(svals, 2),
        "smoothness_lowfreq": dct_lowfreq_share(normalized_gram(dec.pos), cutoff),
        "smoothness_cutoff": cutoff,
        "ctx_within_cos": within,
        "ctx_across_cos": across,
        "ctx_within_cos_raw": within_raw,
        "ctx_across_cos_raw": across_raw,
        "incoherence_max": float(incoherence.max()),
        "incoherence_mean": float(incoherence.mean()),
        "random_baseline": base_max,
        "random_baseline_mean": base_mean,
    }
