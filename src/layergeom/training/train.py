"""Train a small GPT-2 (with its byte-level BPE tokenizer) on a text corpus, or a small ViT digit classifier on an
image corpus, saving checkpoints at scheduled steps.

Checkpoints are written into a hidden ``.checkpoints.partial`` folder beside the output; the newest one
also holds the optimizer and random state, so a killed run resumes from it with the same batches and
ends with the same weights. Only a finished run is renamed to ``checkpoints``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import polars as pl
import torch
from transformers import AutoTokenizer

from layergeom.config import entry_hash, run_checkpoint_steps
from layergeom.extraction.models import select_device
from layergeom.io import atomic
from layergeom.joblog import Progress
from layergeom.training.checkpoints import step_folder

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
STATE_FILE = "trainer_state.json"
RESUME_FILE = "training_state.pt"
LOSS_SCHEMA = {
    "step": pl.Int64,
    "loss": pl.Float64,
    "eval_loss": pl.Float64,
    "lr": pl.Float64,
    "tokens": pl.Int64,
    "checkpoint": pl.Boolean,
}


def train_tokenizer(texts: list[str], vocab_size: int, min_frequency: int, context_length: int):
    """A byte-level BPE tokenizer with one special token (end of text, also BOS), as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS], show_progress=False
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, model_max_length=context_length)


def heldout_documents(n_documents: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the documents held out for evaluation: a seeded ``fraction`` of them."""
    held = np.zeros(n_documents, dtype=bool)
    held[np.random.default_rng(seed).permutation(n_documents)[: int(round(fraction * n_documents))]] = True
    return held


def token_blocks(tokenizer, texts: list[str], length: int) -> np.ndarray:
    """Documents joined by the end-of-text token, cut into rows of ``length`` tokens (the remainder dropped)."""
    if not texts:
        return np.zeros((0, length), dtype=np.int64)
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    flat = np.fromiter(chain.from_iterable(doc + [eos] for doc in encoded), dtype=np.int64)
    n = len(flat) // length
    return flat[: n * length].reshape(n, length)


def batch_rows(n_blocks: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Block rows of 0-based update ``step``: consecutive slices of a seeded permutation per epoch."""
    index = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs = index // n_blocks
    rows = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):  # at most a few epochs per batch
        here = epochs == epoch
        rows[here] = np.random.default_rng([seed, int(epoch)]).permutation(n_blocks)[index[here] % n_blocks]
    return rows


def learning_rate(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    """Rate of 0-based update ``step``: linear warmup, then cosine decay to ``min_ratio * base`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_model(run: dict, tokenizer, data: TrainData) -> torch.nn.Module:
    """An untrained model of the run's architecture and size, initialised from the run's seed."""
    if run["architecture"] == "vit":
        return build_vit(run, data)
    from transformers import GPT2Config, GPT2LMHeadModel

    p = run["dropout"]
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=run["context_length"],
        n_embd=run["n_embd"],
        n_layer=run["n_layer"],
        n_head=run["n_head"],
        resid_pdrop=p,
        embd_pdrop=p,
        attn_pdrop=p,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(run["seed"])
    return GPT2LMHeadModel(config)


def build_vit(run: dict, data: TrainData) -> torch.nn.Module:
    """An untrained ViT image classifier of the run's size for the data's images and labels."""
    from transformers import ViTConfig, ViTForImageClassification

    p = run["dropout"]
    config = ViTConfig(
        image_size=data.train.shape[-1],
        patch_size=run["patch_size"],
        num_channels=data.train.shape[1],
        hidden_size=run["n_embd"],
        num_hidden_layers=run["n_layer"],
        num_attention_heads=run["n_head"],
        intermediate_size=4 * run["n_embd"],
        hidden_dropout_prob=p,
        attention_probs_dropout_prob=p,
        num_labels=int(max(data.train_labels.max(initial=0), data.eval_labels.max(initial=0))) + 1,
    )
    torch.manual_seed(run["seed"])
    return ViTForImageClassification(config)


def make_optimizer(model: torch.nn.Module, run: dict) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases and norm gains)."""
    params = list(model.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": run["weight_decay"]},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=run["learning_rate"],
        betas=(0.9, 0.95),
    )


@dataclass(frozen=True)
class TrainData:
    """Rows for training and for evaluation: token blocks of context_length, or images with their labels."""

    train: np.ndarray
    eval: np.ndarray
    train_labels: np.ndarray | None = None
    eval_labels: np.ndarray | None = None
    row_tokens: int = 0  # tokens the model sees per row

    def fingerprint(self) -> str:
        """A short hash of the data, so a resumed run continues only on the same blocks."""
        digest = hashlib.sha256()
        for part in (self.train, self.eval, self.train_labels, self.eval_labels):
            if part is not None:
                digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()[:16]

    def inputs(self, part: str, rows: np.ndarray | slice, device: torch.device) -> dict[str, torch.Tensor]:
        """The model's keyword inputs for rows of the ``train`` or ``eval`` part, with their labels."""
        values = torch.as_tensor(getattr(self, part)[rows], device=device)
        labels = getattr(self, f"{part}_labels")
        if labels is None:
            return {"input_ids": values, "labels": values}
        return {"pixel_values": values, "labels": torch.as_tensor(labels[rows], device=device)}


def prepare_data(tokenizer, documents: pl.DataFrame, run: dict) -> TrainData:
    """Split documents into training and held-out ones and cut both into token blocks (or take their images)."""
    if run["architecture"] == "vit":
        return prepare_images(documents, run)
    texts = documents["text"].to_list()
    held = heldout_documents(len(texts), run["eval_fraction"], run["seed"])
    train = token_blocks(tokenizer, [t for t, h in zip(texts, held) if not h], run["context_length"])
    evaluation = token_blocks(tokenizer, [t for t, h in zip(texts, held) if h], run["context_length"])
    if len(train) == 0:
        raise ValueError(f"the corpus has fewer than context_length={run['context_length']} tokens to train on")
    return TrainData(train, evaluation[: run["eval_batches"] * run["batch_size"]], row_tokens=run["context_length"])


def prepare_images(documents: pl.DataFrame, run: dict) -> TrainData:
    """The images of an image corpus (text: the pixels of a square one-channel image) and their topics as integer
    labels, split into training and held-out ones."""
    from layergeom.extraction.images import PatchTokenizer

    side = math.isqrt(len(documents["text"][0].split())) if documents.height else 0
    tokenizer = PatchTokenizer(side, run["patch_size"], 1)
    images = tokenizer.pixels(documents["text"].to_list(), f"training corpus '{run['corpus']}'")
    labels = np.asarray([int(topic) for topic in documents["topic"]], dtype=np.int64)
    held = heldout_documents(len(images), run["eval_fraction"], run["seed"])
    if held.all():
        raise ValueError(f"training corpus '{run['corpus']}' has no image left to train on ({len(images)} images)")
    keep = run["eval_batches"] * run["batch_size"]
    return TrainData(
        images[~held], images[held][:keep], labels[~held], labels[held][:keep], row_tokens=1 + tokenizer.n_patches
    )


class Trainer:
    """One training run: model, optimizer, data and the loss rows so far."""

    def __init__(self, run: dict, tokenizer, data: TrainData, device: str = "auto"):
        self.run, self.tokenizer, self.data = run, tokenizer, data
        self.device = select_device(device)
        self.model = build_model(run, tokenizer, data).to(self.device)
        self.optimizer = make_optimizer(self.model, run)
        self.step, self.rows = 0, []
        self.saved = set(run_checkpoint_steps(run))
        self.run_hash = entry_hash(run, len(tokenizer) if tokenizer else 0, data.fingerprint())

    def evaluate(self) -> float | None:
        """Mean loss on the held-out blocks (None when there are none)."""
        if len(self.data.eval) == 0:
            return None
        self.model.eval()
        total = 0.0
        with torch.inference_mode():
            for start in range(0, len(self.data.eval), self.run["batch_size"]):
                rows = slice(start, min(start + self.run["batch_size"], len(self.data.eval)))
                total += float(self.model(**self.data.inputs("eval", rows, self.device)).loss) * (rows.stop - start)
        self.model.train()
        return total / len(self.data.eval)

    def update(self) -> float:
        """One optimizer update on the batch of the current step; returns its loss."""
        run = self.run
        lr = learning_rate(self.step, run["learning_rate"], run["warmup_steps"], run["steps"], run["min_lr_ratio"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rows = batch_rows(len(self.data.train), run["batch_size"], self.step, run["seed"])
        loss = self.model(**self.data.inputs("train", rows, self.device)).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {float(loss)} at step {self.step + 1}: lower learning_rate")
        loss.backward()
        if run["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), run["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        value = float(loss.detach())
        self.rows.append(
            {
                "step": self.step,
                "loss": value,
                "eval_loss": None,
                "lr": lr,
                "tokens": self.step * run["batch_size"] * self.data.row_tokens,
                "checkpoint": False,
            }
        )
        return value

    def save(self, folder: Path) -> None:
        """Save the current step as ``folder/step_<n>`` (model, tokenizer, state); only it keeps the resume state."""
        eval_loss = self.evaluate()
        if self.step == 0:
            self.rows.append(
                {"step": 0, "loss": None, "eval_loss": eval_loss, "lr": None, "tokens": 0, "checkpoint": True}
            )
        else:
            self.rows[-1].update(eval_loss=eval_loss, checkpoint=True)
        target = folder / step_folder(self.step)
        with atomic.atomic_output(target) as tmp:
            self.model.save_pretrained(tmp)
            if self.tokenizer is not None:  # a ViT's patch tokens follow from its config
                self.tokenizer.save_pretrained(tmp)
            state = {
                "step": self.step,
                "tokens": self.rows[-1]["tokens"],
                "loss": self.rows[-1]["loss"],
                "eval_loss": eval_loss,
                "run_hash": self.run_hash,
            }
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "rows": self.rows,
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
                },
                tmp / RESUME_FILE,
            )
        for older in folder.glob(f"*/{RESUME_FILE}"):
            if older.parent != target:
                older.unlink()
        log.info("step %d saved (eval loss %s)", self.step, "n/a" if eval_loss is None else f"{eval_loss:.4f}")

    def resume(self, folder: Path) -> bool:
        """Load the newest checkpoint of an interrupted run of the same config and data; False if there is none."""
        saved_step = lambda p: json.loads((p.parent / STATE_FILE).read_text())["step"]  # noqa: E731
        states = sorted(folder.glob(f"*/{RESUME_FILE}"), key=saved_step)
        if not states:
            return False
        last = states[-1].parent
        meta = json.loads((last / STATE_FILE).read_text())
        if meta.get("run_hash") != self.run_hash:
            return False
        self.model = type(self.model).from_pretrained(last).to(self.device)
        self.optimizer = make_optimizer(self.model, self.run)
        bundle = torch.load(last / RESUME_FILE, weights_only=False)
        self.optimizer.load_state_dict(bundle["optimizer"])
        torch.set_rng_state(bundle["rng"])
        if bundle["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(bundle["cuda_rng"])
        self.rows, self.step = bundle["rows"], meta["step"]
        self.model.train()
        log.info("resuming after step %d from %s", self.step, last)
        return True

    def loss_table(self) -> pl.DataFrame:
        """One row per step (0 = initialisation): batch loss, held-out loss at checkpoints, rate, tokens seen."""
        return pl.DataFrame(self.rows, schema=LOSS_SCHEMA)


def train(run: dict, tokenizer, data: TrainData, checkpoints: str | os.PathLike, device: str = "auto") -> pl.DataFrame:
    """Train the run, write its checkpoints to ``checkpoints/step_<n>`` and return the loss table."""
    checkpoints = Path(checkpoints)
    partial = atomic.temp_sibling(checkpoints, "partial")
    trainer = Trainer(run, tokenizer, data, device)
    if not (partial.exists() and trainer.resume(partial)):
        atomic.remove(partial)
        partial.mkdir(parents=True)
        trainer.model.train()
        trainer.save(partial)
    log.info(
        "%d training rows, %d held-out rows of %d tokens; %d steps of %d rows on %s; saving steps %s",
        len(data.train),
        len(data.eval),
        data.row_tokens,
        run["steps"],
        run["batch_size"],
        trainer.device,
        sorted(trainer.saved),
    )
    progress = Progress(run["steps"] - trainer.step, "steps")
    while trainer.step < run["steps"]:
        loss = trainer.update()
        if trainer.step in trainer.saved:
            trainer.save(partial)
        progress.update(1, force=trainer.step == run["steps"], note=f"step {trainer.step}, loss {loss:.4f}")
    for state in partial.glob(f"*/{RESUME_FILE}"):
        state.unlink()
    atomic.remove(checkpoints)
    os.replace(partial, checkpoints)
    return trainer.loss_table()


def write_tokenizer(run: dict, documents: str | os.PathLike, out: str | os.PathLike) -> None:
    """The train_tokenizer rule: a byte-level BPE tokenizer of the run's documents, saved with save_pretrained."""
    texts = pl.read_parquet(documents)["text"].to_list()
    tokenizer = train_tokenizer(texts, run["vocab_size"], run["min_frequency"], run["context_length"])
    log.info("trained a byte-level BPE tokenizer of %d tokens on %d documents", len(tokenizer), len(texts))
    with atomic.atomic_output(out) as tmp:
        tokenizer.save_pretrained(tmp)


def run_training(
    run: dict,
    tokenizer_dir: str | os.PathLike | None,
    documents: str | os.PathLike,
    checkpoints: str | os.PathLike,
    loss_out: str | os.PathLike,
    threads: int,
) -> pl.DataFrame:
    """The train_model rule: train the run's model, save its checkpoints and its loss table (a ViT has no
    ``tokenizer_dir``)."""
    torch.set_num_threads(max(1, threads))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else None
    table = train(run, tokenizer, prepare_data(tokenizer, pl.read_parquet(documents), run), checkpoints, run["device"])
    log.info("final training loss %.4f, held-out loss %s", table["loss"][-1], table["eval_loss"][-1])
    atomic.write_parquet(table, loss_out)
    return table
