"""What the workflow's rules need from the config, in one place: the pairs each analysis covers, token
selections, stored or fused models, store paths, the settings a job hashes, job resources and the targets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from layergeom import config as lgconfig
from layergeom.analyses.registry import ANALYSES, analysis
from layergeom.analyses.spec import Analysis
from layergeom.corpus import source_files
from layergeom.extraction.fingerprint import model_files
from layergeom.extraction.sources import resolve_source
from layergeom.io.shards import shard_ids
from layergeom.stream.selection import describe

SELECTION_KEYS = ("include_special", "exclude_first_position")
TOKENIZER_KEYS = ("corpus", "vocab_size", "min_frequency", "context_length")
SMALL_MODEL = 20e6  # parameters of a GPT-2 trained by the workflow below which its jobs take one thread


def pattern(names: list[str]) -> str:
    """Wildcard regex matching exactly ``names`` (and nothing when there are none)."""
    return "|".join(map(re.escape, names)) if names else "(?!)"


class Dag:
    """The views of one validated, checkpoint-expanded config that the rule files use."""

    def __init__(self, config: dict, cores: int | None = None) -> None:
        self.config = config
        self.cores = cores  # the run's --cores (None: not known)
        self._covered: dict[str, list[tuple[str, str]]] = {}  # analysis_pairs by analysis (input functions ask often)
        self.results = config["results"]
        self.pairs = lgconfig.pairs(config)
        self.models = list(config["models"])
        self.corpora = list(config["corpora"])
        self.checkpoints = lgconfig.checkpoint_families(config)  # family -> [(model, step), ...]
        self.train_runs = config["training"]["runs"]
        self.stream_shards = shard_ids(config["stream"]["shards"])
        self.stored_models = pattern([m for m in self.models if not self.fused(m)])
        self.fused_models = pattern([m for m in self.models if self.fused(m)])

    @staticmethod
    def wildcard(names) -> str:
        """Wildcard regex of ``names`` (any name when there are none)."""
        names = list(names)
        return pattern(names) if names else "[^/]+"

    # models and extraction

    def extraction(self, model: str) -> dict:
        """A model's extraction settings (global with the model's overrides)."""
        return lgconfig.extraction_settings(self.config, model)

    def fused(self, model: str) -> bool:
        """Whether a model's extraction is fused (``extraction.store: none``): no store, partials from the forward."""
        return self.extraction(model)["store"] == "none"

    def store_path(self, model: str, corpus: str) -> str:
        """A pair's store: states.zarr, or in fused mode its header.zarr (layer names and attributes, no tokens)."""
        return f"{self.results}/hidden/{model}/{corpus}/{'header' if self.fused(model) else 'states'}.zarr"

    def header(self, wc) -> str:
        """Input function: what a merge reads the layer names and attributes from, the pair's store or header."""
        return self.store_path(wc.model, wc.corpus)

    def extract_params(self, wc) -> dict:
        """Everything extraction depends on; a change here reruns the job."""
        return {
            "model": {k: v for k, v in self.config["models"][wc.model].items() if k != "corpora"},
            "corpus": self.config["corpora"][wc.corpus],
            "settings": lgconfig.job_settings(self.extraction(wc.model)),
        }

    def model_inputs(self, wc) -> list[str]:
        """Files a model is loaded from: its training run's checkpoints, or its local files (edits rerun jobs)."""
        entry = self.config["models"][wc.model]
        run = (entry.get("checkpoint") or {}).get("run")
        if run:
            return [f"{self.results}/train/{run}/checkpoints"]
        files = model_files(resolve_source(entry["source"], entry.get("gguf_file")))
        cwd = Path.cwd()
        return [str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p) for p in files]

    def extraction_shards(self, model: str) -> int:
        """Extraction shard count K of a model."""
        return self.extraction(model)["shards"]

    def extract_inputs(self, wc) -> dict:
        """Inputs of rule extract: the corpus and model, and with K > 1 the plan and every shard's done file."""
        inputs = dict(
            documents=f"{self.results}/corpus/{wc.corpus}/documents.parquet",
            sentences=f"{self.results}/corpus/{wc.corpus}/sentences.parquet",
            model=self.model_inputs(wc),
        )
        shards = self.extraction_shards(wc.model)
        if shards > 1:
            parts = f"{self.results}/parts/{wc.model}/{wc.corpus}/extract"
            inputs.update(plan=f"{parts}/plan.json", shards=[f"{parts}/{s}.json" for s in shard_ids(shards)])
        return inputs

    def runs_model(self, wc) -> bool:
        """Whether rule extract runs the model (K = 1) rather than only checking the K shards' regions."""
        return self.extraction_shards(wc.model) == 1

    def gpu(self, wc) -> int:
        """One GPU for a job that runs a model on CUDA."""
        return int(self.extraction(wc.model)["device"] == "cuda")

    def model_threads(self, model: str, many: int) -> int:
        """Threads of a job that runs ``model``: one for a small model trained by the workflow (two such jobs then
        share the cores; more threads hardly speed up its forward pass), else ``many``."""
        run = (self.config["models"][model].get("checkpoint") or {}).get("run")
        return self.run_threads(run, many) if run in self.train_runs else self.shared(many)

    def run_threads(self, run: str, many: int) -> int:
        """Threads of a job that trains or runs a model of training run ``run``: one below SMALL_MODEL parameters
        (an upper estimate: GPT-2's blocks and embeddings), else ``many`` (at most half the cores)."""
        entry = self.train_runs[run]
        parameters = 12 * entry["n_layer"] * entry["n_embd"] ** 2 + entry["vocab_size"] * entry["n_embd"]
        return 1 if parameters <= SMALL_MODEL else self.shared(many)

    def shared(self, many: int) -> int:
        """``many`` threads, but at most half the run's cores (at least one): two model jobs then run at once, and
        one's single-threaded parts (loading a GGUF file, writing the store) do not hold every core. On 2 cores a
        second thread sped SmolLM2's forward up only 1.9x."""
        return max(1, min(many, self.cores // 2)) if self.cores else many

    def extract_resources(self, wc, attempt: int = 1) -> dict[str, int]:
        """Rule extract's threads and cluster resources: a model's worth with K = 1, a check's with K > 1."""
        model = self.runs_model(wc)
        return {
            "threads": self.model_threads(wc.model, 8) if model else 1,
            "gpu": self.gpu(wc) if model else 0,
            "mem_mb": (16000 if model else 2000) * attempt,
            "runtime": (240 if model else 30) * attempt,
        }

    # analyses

    def selection(self, name: str) -> dict[str, bool]:
        """Token selection of an analysis: ``selection`` with its section's non-null overrides applied."""
        own = self.config.get(name) or {}
        return {k: self.config["selection"][k] if own.get(k) is None else own[k] for k in SELECTION_KEYS}

    def tokens(self, name: str) -> str:
        """The token selection of an analysis in words."""
        return describe(**self.selection(name))

    def analysis_pairs(self, name: str) -> list[tuple[str, str]]:
        """The (model, corpus) pairs an analysis covers: a checkpoint before its family's last only for an analysis
        with columns drawn against the training step (no figure or claim reads the others there)."""
        if name not in self._covered:
            spec = analysis(name)
            early = set() if spec.training else self.intermediate()
            covered = [(m, c) for m, c in self.pairs if spec.covers is None or spec.covers(self.config, m, c)]
            self._covered[name] = [(m, c) for m, c in covered if m not in early]
        return self._covered[name]

    def corpus_models(self, name: str, corpus: str) -> list[str]:
        """Models an analysis covers on a corpus, in config order."""
        return [m for m, c in self.analysis_pairs(name) if c == corpus]

    def corpus_models_of(self, name: str):
        """Params function: the models an analysis covers on the job's corpus."""
        return lambda wc: self.corpus_models(name, wc.corpus)

    def streamed(self) -> list[Analysis]:
        """The analyses fed by the stream shards, in registry order."""
        return [a for a in ANALYSES.values() if a.streamed]

    def stream_plans(self, wc) -> dict[str, dict]:
        """Params of a stream job: the token selection of every streamed analysis covering its pair."""
        return {
            a.name: self.selection(a.name)
            for a in self.streamed()
            if (wc.model, wc.corpus) in self.analysis_pairs(a.name)
        }

    def fused_plans(self, wc) -> dict[str, dict]:
        """Params of a fused extraction job: every streamed analysis' selection and config section for its pair."""
        return {
            name: {"selection": selection, "settings": self.config.get(name)}
            for name, selection in self.stream_plans(wc).items()
        }

    def pair_shards(self, model: str) -> list[str]:
        """Token shards of a model's stream partials: stream.shards, or in fused mode its extraction shards."""
        return shard_ids(self.extraction_shards(model)) if self.fused(model) else self.stream_shards

    def stream_parts(self, wc) -> list[str]:
        """Input function: the stream shard folders of a pair, the input of every streamed analysis' merge."""
        return [f"{self.results}/parts/{wc.model}/{wc.corpus}/stream/{s}" for s in self.pair_shards(wc.model)]

    def centered_parts(self, wc) -> list[str]:
        """Anisotropy's pass-2 shards of a stored pair; none in fused mode (the ID sample gives the centered cosine)."""
        return self.second_pass_parts("anisotropy", "centered")(wc)

    def second_pass_parts(self, name: str, step: str):
        """Input function: an analysis' second-pass shards ``parts/<step>/<shard>`` of a stored pair; none in fused
        mode (no store to pass over again)."""

        def parts(wc) -> list[str]:
            folder = f"{self.results}/{name}/{wc.model}/{wc.corpus}/parts/{step}"
            return [] if self.fused(wc.model) else [f"{folder}/{s}" for s in self.pair_shards(wc.model)]

        return parts

    def fused_stream_parts(self, wc) -> list[str]:
        """Input function: the stream partials of a fused pair (what its forward pass sampled); none of a stored one."""
        return self.stream_parts(wc) if self.fused(wc.model) else []

    def pair_dir(self, name: str) -> str:
        """An analysis' folder of one pair (wildcards ``{model}``, ``{corpus}``)."""
        return f"{self.results}/{name}/{{model}}/{{corpus}}"

    def merge_outputs(self, name: str) -> dict[str, str]:
        """The merge outputs of an analysis, as path patterns."""
        return {key: f"{self.pair_dir(name)}/{file}" for key, file in analysis(name).outputs.items()}

    def merge_settings(self, name: str) -> dict[str, Any]:
        """The keys of an analysis' config section that its merge depends on."""
        return {key: self.config[name][key] for key in analysis(name).settings}

    def facts(self, name: str) -> dict[str, Any]:
        """What an analysis' figures, captions and claims state, with its token selection in words."""
        spec = analysis(name)
        facts = spec.facts(self.config, self.selection(name)) if spec.facts else {}
        return {**facts, "tokens": self.tokens(name)}

    def figure(self, name: str, file: str, *folders: str) -> str:
        """The one figure path pattern, ``figures/<analysis or stage>/<folders>/<file>.png``; the folders are
        ``{model}/{corpus}`` per pair (``{family}/{corpus}`` per checkpoints entry), ``{corpus}`` per corpus."""
        return "/".join((self.results, "figures", name, *folders, f"{file}.png"))

    def pair_figure(self, name: str, file: str) -> str:
        """Path pattern of a per-(model, corpus) figure."""
        return self.figure(name, file, "{model}", "{corpus}")

    def corpus_figure(self, name: str, file: str) -> str:
        """Path pattern of a per-corpus figure."""
        return self.figure(name, file, "{corpus}")

    def figure_sets(self, per: str) -> list[tuple[Analysis, Any]]:
        """(analysis, figure set) of every registered figure rule drawn per ``pair`` or per ``corpus``."""
        return [(a, s) for a in ANALYSES.values() for s in (a.pair_figures if per == "pair" else a.corpus_figures)]

    def figure_corpora(self, name: str, figures) -> list[str]:
        """Corpora a per-corpus figure rule draws."""
        covered = [c for c in self.corpora if self.corpus_models(name, c)]
        return [c for c in covered if figures.when is None or figures.when(self.config, c)]

    # tables

    def table(self, name: str) -> str:
        """Path pattern of an analysis' per-(model, corpus) layer table."""
        return f"{self.pair_dir(name)}/{analysis(name).table}"

    def corpus_tables(self, name: str):
        """Input function: the layer tables of every model an analysis covers on the job's corpus."""
        return lambda wc: [
            self.table(name).format(model=m, corpus=wc.corpus) for m in self.corpus_models(name, wc.corpus)
        ]

    def table_spec(self, wc) -> dict[str, str]:
        """What a cross-model table's caption and page say (only its analysis' entry, so nothing else reruns it)."""
        return {"what": analysis(wc.analysis).what, "tokens": self.tokens(wc.analysis)}

    # training and findings

    def corpus_files(self, wc) -> list[str]:
        """Input function: a corpus entry's source files (an edited, added or removed file reruns its job)."""
        return source_files(self.config["corpora"][wc.corpus])

    def tokenizer_settings(self, wc) -> dict[str, Any]:
        """The keys of a training run that its tokenizer depends on."""
        return {key: self.train_runs[wc.run][key] for key in TOKENIZER_KEYS}

    def run_tokenizer(self, wc) -> list[str]:
        """Input function: a GPT-2 run's trained tokenizer (none for a ViT, whose patch tokens need no training)."""
        vit = self.train_runs[wc.run]["architecture"] == "vit"
        return [] if vit else [f"{self.results}/train/{wc.run}/tokenizer"]

    def run_documents(self, wc) -> str:
        """The documents table of a training run's corpus."""
        return f"{self.results}/corpus/{self.train_runs[wc.run]['corpus']}/documents.parquet"

    def measures(self) -> list[str]:
        """Analyses with columns drawn against the training step."""
        return [a.name for a in ANALYSES.values() if a.training]

    def family_corpora(self, family: str) -> list[str]:
        """Corpora the checkpoint models of one entry run on."""
        models = {m for m, _ in self.checkpoints[family]}
        return sorted({c for m, c in self.pairs if m in models})

    def training_tables(self, wc) -> list[str]:
        """Input function of a training figure: the measure's table of every checkpoint of the family."""
        return [self.table(wc.measure).format(model=m, corpus=wc.corpus) for m, _ in self.checkpoints[wc.family]]

    def training_measure(self, name: str) -> dict[str, Any]:
        """The columns of an analysis' table drawn against the step, and the rows they take."""
        spec = analysis(name)
        return {"columns": spec.training, "where": spec.training_where}

    def drift_table(self) -> list[str]:
        """The drift experiment's table when it is enabled (its claim reads it), else nothing."""
        return [f"{self.results}/dynamics/drift.parquet"] if self.config["drift"]["enabled"] else []

    def claim_facts(self) -> dict[str, dict]:
        """What the claims of every analysis with claims state (its tokens, its settings)."""
        return {a.name: self.facts(a.name) for a in ANALYSES.values() if a.findings is not None}

    def landing_page(self, description: str) -> str:
        """The report's landing page: the findings page once the findings rule has written it, else ``description``."""
        page = Path(f"{self.results}/findings.rst").absolute()
        return str(page) if page.exists() else description

    def intermediate(self) -> set[str]:
        """Checkpoint models before the last of their family (training claims only)."""
        return {m for family in self.checkpoints.values() for m, _ in family[:-1]}

    def evidence(self) -> dict[str, tuple[list, list[str]]]:
        """``<analysis>_depth`` and ``<analysis>_training`` of every analysis with claims: (keys, table paths)."""
        steps = {m: (family, s) for family, models in self.checkpoints.items() for m, s in models}
        intermediate = self.intermediate()
        out = {}
        for a in ANALYSES.values():
            if a.findings is None:
                continue
            pairs = self.analysis_pairs(a.name)
            depth = [(m, c) for m, c in pairs if m not in intermediate]
            chosen = [(m, c) for m, c in pairs if m in steps]
            table = self.table(a.name)
            out[f"{a.name}_depth"] = ([[m, c] for m, c in depth], [table.format(model=m, corpus=c) for m, c in depth])
            out[f"{a.name}_training"] = (
                [[steps[m][0], c, steps[m][1]] for m, c in chosen],
                [table.format(model=m, corpus=c) for m, c in chosen],
            )
        return out

    # targets

    def targets(self) -> list[str]:
        """Every final output of a run: stores, token tables, tables, figures (per pair: not of a checkpoint before
        its family's last), the findings."""
        r = self.results
        out = [self.store_path(m, c) for m, c in self.pairs]
        out += [f"{r}/hidden/{m}/{c}/tokens.parquet" for m, c in self.pairs]
        intermediate = self.intermediate()  # drawn over training instead (dynamics figures)
        for a, figures in self.figure_sets("pair"):
            for m, c in self.analysis_pairs(a.name):
                if m in intermediate:
                    continue
                out += [self.pair_figure(a.name, f.file).format(model=m, corpus=c) for f in figures.figures]
        for a, figures in self.figure_sets("corpus"):
            for c in self.figure_corpora(a.name, figures):
                out += [self.corpus_figure(a.name, f.file).format(corpus=c) for f in figures.figures]
        out += [
            self.table(a.name).format(model=m, corpus=c)
            for a in ANALYSES.values()
            for m, c in self.analysis_pairs(a.name)
        ]
        out += [f"{r}/tables/{a}/{c}.csv" for a in sorted(ANALYSES) for c in self.corpora if self.corpus_models(a, c)]
        out += [self.figure("train", "loss", run) for run in self.train_runs]
        out += [
            self.figure("dynamics", measure, family, corpus)
            for family, models in self.checkpoints.items()
            for corpus in self.family_corpora(family)
            for measure in self.measures()
            if (models[-1][0], corpus) in self.analysis_pairs(measure)
        ]
        out += [self.figure("dynamics", "drift")] if self.config["drift"]["enabled"] else []
        out += [f"{r}/findings.md"]
        return out
