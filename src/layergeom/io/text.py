"""Reading corpus text files: binary files refused, UTF-8 first, else Latin-1."""

from __future__ import annotations

from pathlib import Path

CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32), 127])  # C0 controls but tab, newlines, form feed


def is_binary(raw: bytes) -> bool:
    """Whether file contents are not text: a NUL byte, or more than 1% control bytes other than whitespace."""
    controls = sum(raw.count(bytes([b])) for b in CONTROL_BYTES)
    return b"\0" in raw or controls > 0.01 * max(len(raw), 1)


def read_text(path: Path) -> tuple[str | None, bool]:
    """The text of a file (None if it is binary) and whether it was UTF-8 (else it is read as Latin-1)."""
    raw = path.read_bytes()
    if is_binary(raw):
        return None, False
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("latin-1"), False
