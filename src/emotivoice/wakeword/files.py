"""Writing output folders whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from emotivoice.errors import InvalidConfigError

__all__ = ["atomic_file", "atomic_folder"]


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A temporary sibling of ``target`` to fill; renamed to ``target`` when the block ends
    without an error, deleted when it raises. ``target`` may not hold files already."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidConfigError(
            f"{target} already exists and is not an empty folder; choose another."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    partial.rename(target)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """A temporary sibling path of the file ``target``, moved onto it when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
