"""Arrays on the values' device: accumulators keep float64 numpy arrays, or float64 torch tensors on the
device of the torch blocks they are fed (the GPU that ran the forward pass), and save as numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    Values = np.ndarray | torch.Tensor


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch for numpy work)."""
    return type(x).__module__.startswith("torch")


def to_numpy(x: Any) -> np.ndarray:
    """A host numpy array of ``x`` (a tensor is copied off its device)."""
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


def on_host(x: Any) -> Any:
    """A CPU tensor as numpy, a view of its memory (bfloat16, which numpy lacks, widened to float32); anything
    else as it is."""
    if not is_tensor(x) or x.device.type != "cpu":
        return x
    x = x.detach()
    return (x.float() if dtype_name(x) == "bfloat16" else x).numpy()


def namespace(x: Any) -> Any:
    """The module of ``x``'s kind of array: torch for a tensor, else numpy."""
    if not is_tensor(x):
        return np
    import torch

    return torch


def dtype_name(x: Any) -> str:
    """The name of the dtype of a numpy array or a tensor: ``"float64"``, ``"int32"``."""
    return str(x.dtype).removeprefix("torch.")


def like(x: Any, ref: Any) -> Any:
    """``x`` as an array of the same kind and device as ``ref`` (numpy stays numpy; tensors keep their dtype)."""
    if not is_tensor(ref):
        return to_numpy(x)
    import torch

    return torch.as_tensor(x, device=ref.device)


def zeros(shape: tuple[int, ...], ref: Any = None) -> Any:
    """float64 zeros, a tensor on ``ref``'s device when ``ref`` is a tensor."""
    if not is_tensor(ref):
        return np.zeros(shape)
    import torch

    return torch.zeros(shape, dtype=torch.float64, device=ref.device)


def take_rows(values: Values, keep: np.ndarray) -> Values:
    """Rows of ``values`` where the host boolean ``keep`` holds."""
    return values[like(keep, values)] if is_tensor(values) else values[keep]


def row_sq_norms(values: Values) -> Values:
    """Squared norm of every row."""
    return (values * values).sum(1) if is_tensor(values) else np.einsum("ij,ij->i", values, values)


def finite_rows(values: Values) -> np.ndarray:
    """Host boolean: which rows are all finite (a row whose sum is finite is; the others are checked entry by entry,
    since finite entries can sum past the largest float)."""
    finite = to_numpy(namespace(values).isfinite(values.sum(1)))
    if not finite.all():
        suspect = np.flatnonzero(~finite)
        finite[suspect] = to_numpy(namespace(values).isfinite(values[like(suspect, values)]).all(1))
    return finite
