"""Self-attention statistics per layer and head (queries, keys, entropy), from one hooked forward pass [AS]."""

from layergeom.analyses.spec import Analysis, Evidence
from layergeom.config import image_corpus
from layergeom.findings import attention as claims


def judge(evidence: Evidence) -> list:
    """The training claims on every checkpoint family, the drift claim on the drift experiment."""
    return claims.findings(dict(evidence.training), evidence.drift, evidence.tokens)


ANALYSIS = Analysis(
    name="attention",
    what="per layer and head: mean query and key norms, their cosine, attention entropy and largest weight",
    table="heads.parquet",
    covers=lambda config, model, corpus: (
        (config["attention"]["scope"] == "all" or bool(config["models"][model].get("checkpoint")))
        and not image_corpus(config["corpora"][corpus])
    ),
    training=("mean_q_norm", "mean_k_norm", "qk_cos", "mean_entropy", "mean_max_weight"),
    claims=claims.CLAIMS,
    findings=judge,
)
