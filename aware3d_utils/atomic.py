"""Atomic file writes: a file appears complete under its name, or not at all.

Write to a temporary file in the same folder, then `os.replace` it over the target (atomic on
POSIX file systems). A crash leaves at most a hidden `.name.*.tmp` file, which readers ignore.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_save", "atomic_write_text"]


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a finished file gets the usual permissions
_FILE_MODE = 0o666 & ~_process_umask()


@contextmanager
def _temporary_beside(path: Path, prefix: str, suffix: str) -> Iterator[tuple[int, str]]:
    """(fd, name) of a temporary file in path's folder; renamed over `path` when the block
    succeeds, removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        yield fd, tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """`with atomic_write(path) as fh: fh.write(...)`; the file is renamed into place on success."""
    path = Path(path)
    with _temporary_beside(path, f".{path.name}.", ".tmp") as (fd, _), os.fdopen(fd, mode) as fh:
        yield fh


def atomic_save(path: str | os.PathLike, save: Callable[[str], object]) -> None:
    """Call `save(tmp_path)` (for writers that want a file name, e.g. cv2.imwrite), then rename.

    The temporary name keeps the target's suffix so that writers choosing a format by suffix work.
    """
    path = Path(path)
    with _temporary_beside(path, f".{path.stem}.", f".tmp{path.suffix}") as (fd, tmp):
        os.close(fd)
        if save(tmp) is False:  # cv2.imwrite reports failure by returning False
            raise OSError(f"{path}: writing failed")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
