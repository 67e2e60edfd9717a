"""The forward runner: a model's hidden states of the real (unpadded) tokens, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from layergeom.extraction.models import LoadedModel, find_final_norm
from layergeom.extraction.sequences import (
    Sequences,
    batches_in_range,
)


class NonFiniteError(ValueError):
    """Hidden states that the storage dtype cannot hold."""


class HiddenStates:
    """Runs batches through a model and returns the hidden states of the real (unpadded) tokens."""

    def __init__(self, loaded: LoadedModel, residual_before_final_norm: bool = False, layers: list[int] | None = None):
        self.loaded = loaded
        self.layers = list(range(loaded.n_layers + 1)) if layers is None else list(layers)
        self.norm = find_final_norm(loaded.model) if loaded.kind == "decoder" else None
        if residual_before_final_norm and self.norm is None:
            raise ValueError("residual_before_final_norm is set but the model has no final norm module")
        self.residual_before_final_norm = residual_before_final_norm
        self.last_after_final_norm: bool | None = None if self.norm is not None else False
        names = ["embeddings"] + [f"block_{i}" for i in range(1, loaded.n_layers + 1)]
        self.names = [names[i] for i in self.layers]
        self._seen: dict[str, torch.Tensor] = {}
        if self.norm is not None:
            self.norm.register_forward_pre_hook(lambda _m, args: self._seen.__setitem__("input", args[0]))
            self.norm.register_forward_hook(lambda _m, _a, out: self._seen.__setitem__("output", out))

    def forward(self, seqs: Sequences, rows: np.ndarray):
        """The model's output for sequences ``rows``, right-padded, and the padding mask."""
        lengths = torch.as_tensor(seqs.lengths()[rows])
        width = int(lengths.max())
        mask = (torch.arange(width)[None, :] < lengths[:, None]).to(self.loaded.device)
        with torch.inference_mode():
            return self.loaded.model(**self.inputs(seqs, rows, width, mask), output_hidden_states=True), mask

    def inputs(self, seqs: Sequences, rows: np.ndarray, width: int, mask: torch.Tensor) -> dict:
        """The model's keyword inputs: the images' pixels, or the right-padded token ids and the padding mask."""
        device = self.loaded.device
        if seqs.pixels is not None:
            return {"pixel_values": torch.as_tensor(seqs.pixels[rows]).to(device)}
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(seqs.ids[r])] = torch.as_tensor(seqs.ids[r])
        cache = {"use_cache": False} if self.loaded.kind == "decoder" else {}
        return {"input_ids": ids.to(device), "attention_mask": mask.long(), **cache}

    def _hidden(self, seqs: Sequences, rows: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The stored layers' hidden states (sequences, width, d) of sequences ``rows`` and the padding mask."""
        out, mask = self.forward(seqs, rows)
        hidden = list(out.hidden_states)
        if len(hidden) != self.loaded.n_layers + 1:
            raise RuntimeError(f"model returned {len(hidden)} hidden states, expected {self.loaded.n_layers + 1}")
        if self.norm is not None:
            if self.last_after_final_norm is None:
                self.last_after_final_norm = bool(torch.equal(hidden[-1], self._seen["output"]))
            if self.residual_before_final_norm and self.last_after_final_norm:
                hidden[-1] = self._seen["input"]
        return [hidden[layer] for layer in self.layers], mask

    def __call__(self, seqs: Sequences, rows: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Hidden states (stored layers, tokens, d) of sequences ``rows`` as ``dtype`` on the host, tokens in
        row-major order."""
        hidden, mask = self._hidden(seqs, rows)
        with torch.inference_mode():
            kept = torch.empty((len(hidden), int(mask.sum()), hidden[0].shape[-1]), dtype=dtype, device=mask.device)
            for position, states in enumerate(hidden):
                kept[position] = states[mask]
            return kept.cpu()

    def layer_states(self, seqs: Sequences, rows: np.ndarray) -> list[torch.Tensor]:
        """Each stored layer's hidden states (tokens, d) of sequences ``rows``, left on the model's device in its
        dtype (fused extraction): views of the model's outputs when no sequence is padded."""
        hidden, mask = self._hidden(seqs, rows)
        with torch.inference_mode():
            if bool(mask.all()):
                return [states.reshape(-1, states.shape[-1]) for states in hidden]
            return [states[mask] for states in hidden]


def check_finite(values: torch.Tensor, names: list[str], offset: int) -> None:
    """Raise NonFiniteError naming the first layer with inf or nan (overflow of the storage dtype)."""
    finite = torch.isfinite(values).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = names[int(torch.argmin(finite.int()))]
        raise NonFiniteError(
            f"layer '{bad}' has inf or nan in {values.dtype} near tokens {offset}..{offset + values.shape[1]}: "
            "the values overflow the storage dtype; set extraction.dtype: float32"
        )


def iter_batches(
    runner: HiddenStates,
    seqs: Sequences,
    batches: list[np.ndarray],
    start: int,
    stop: int,
    dtype: torch.dtype = torch.float32,
) -> Iterator[np.ndarray]:
    """Hidden states of stored tokens [start, stop) in order as ``dtype``, each computed in its batch of the plan."""
    lengths = seqs.lengths()
    chosen, done = batches_in_range(lengths, batches, start, stop)
    for rows in chosen:
        values = runner(seqs, rows, dtype)[:, max(start - done, 0) : stop - done]
        check_finite(values, runner.names, max(done, start))
        done += int(lengths[rows].sum())
        yield values.numpy()
