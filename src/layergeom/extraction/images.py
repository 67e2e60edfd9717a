"""Images as token sequences for a vision transformer: a [CLS] token, then one token per patch, row by row."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.extraction.sequences import Sequences

CLS = "[CLS]"
LEVELS = 4  # a patch's token id codes each of its pixels at 4 grey levels


class PatchTokenizer:
    """The token ids of a ViT's inputs: 0 for [CLS]; a patch's id is 1 + its pixels quantised to LEVELS grey levels,
    read as a base-LEVELS number (a type of patch, for the token table; the model sees the pixels)."""

    def __init__(self, image_size: int, patch_size: int, num_channels: int) -> None:
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size, self.patch_size, self.num_channels = image_size, patch_size, num_channels
        self.patch_pixels = patch_size * patch_size * num_channels
        self.all_special_ids, self.unk_token_id, self.unk_token = [0], None, None

    @classmethod
    def of(cls, config) -> PatchTokenizer:
        """The tokenizer of a ViT config (``image_size``, ``patch_size``, ``num_channels``)."""
        return cls(int(config.image_size), int(config.patch_size), int(config.num_channels))

    def __len__(self) -> int:
        return 1 + LEVELS**self.patch_pixels

    @property
    def n_patches(self) -> int:
        """Patches per image: the sequence length without [CLS]."""
        return (self.image_size // self.patch_size) ** 2

    def pixels(self, texts: list[str], where: str) -> np.ndarray:
        """The images (n, channels, size, size) of documents whose text is their pixels in [0, 1], channel by channel
        and row by row."""
        shape = (self.num_channels, self.image_size, self.image_size)
        images = [np.asarray(text.split(), dtype=np.float32) for text in texts]
        wrong = [i for i, image in enumerate(images) if image.size != int(np.prod(shape))]
        if wrong:
            raise ValueError(
                f"{where}: document {wrong[0]} has {images[wrong[0]].size} pixel values, the model takes "
                f"{int(np.prod(shape))} ({' x '.join(map(str, shape))})"
            )
        return np.stack(images).reshape(len(images), *shape) if images else np.zeros((0, *shape), np.float32)

    def ids(self, images: np.ndarray) -> np.ndarray:
        """Token ids (n, 1 + patches): [CLS], then each patch's quantised pixels, row by row."""
        n, c, size, p = images.shape[0], self.num_channels, self.image_size, self.patch_size
        grid = size // p
        patches = images.reshape(n, c, grid, p, grid, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, -1)
        levels = np.clip(np.floor(patches * LEVELS), 0, LEVELS - 1).astype(np.int64)
        codes = levels @ (LEVELS ** np.arange(self.patch_pixels - 1, -1, -1, dtype=np.int64))
        return np.concatenate([np.zeros((n, 1), np.int64), 1 + codes], axis=1)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        """[CLS], or a patch's grey levels as digits (``p0312``: top-left, top-right, bottom-left, bottom-right)."""
        width = self.patch_pixels
        return [CLS if i == 0 else "p" + np.base_repr(i - 1, LEVELS).zfill(width) for i in ids]


def image_sequences(tokenizer: PatchTokenizer, documents: pl.DataFrame, where: str) -> Sequences:
    """Every image of an image corpus as one sequence: [CLS] and its patches, the pixels kept for the forward."""
    images = tokenizer.pixels(documents["text"].to_list(), where)
    ids = tokenizer.ids(images)
    special = np.zeros(ids.shape[1], dtype=bool)
    special[0] = True
    return Sequences(
        seq_id=np.arange(len(ids), dtype=np.int64),
        doc_id=documents["doc_id"].to_numpy().astype(np.int64),
        topic=documents["topic"].to_list(),
        ids=list(ids),
        special=[special] * len(ids),
        pixels=images,
    )
