"""A lock on a dataset or run folder, so that two runs never do the same work in one folder.

A run takes `<folder>/.lock` (a shard run `.lock-shard-K-of-N`, so the shards of one run may work
side by side, as on a SLURM array): the file holds the owner's host, pid and start time and
appears by a hard link (atomic, and it fails when the lock exists). A whole run is refused while
any lock is held; a shard run while the whole-run lock or its own shard's is. A lock whose process
is gone (same host: no such pid, a zombie, or the pid reused by a process started later) is stale
and taken over; a lock from another host cannot be checked, and the message says how to remove it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path

__all__ = ["FolderLockedError", "FolderLock"]


class FolderLockedError(OSError):
    """Another live run holds the folder's lock."""

    def __init__(self, message: str, path: Path):
        super().__init__(errno.EBUSY, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc (Linux), None where unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (command) "
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _alive(pid: int, start: str | None = None) -> bool:
    """The process runs: not gone, not a zombie (killed, not yet reaped), and, where the lock
    recorded its start time, not another process that reuses the pid."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        if state == "Z" or (start is not None and started != start):
            return False
    return True


class FolderLock:
    """Context manager: `with FolderLock(root, shard): ...` (shard (k, n) or None)."""

    def __init__(self, root: str | os.PathLike, shard: tuple[int, int] | None = None, what: str = "datagen run"):
        self.root = Path(root)
        self.what = what  # who takes such locks, for the message: "datagen run", "training run", ...
        name = ".lock" if shard is None else f".lock-shard-{shard[0]}-of-{shard[1]}"
        self.path = self.root / name
        self.shard = shard

    def _owner(self, path: Path) -> dict | None:
        """The holder of a lock file, or None when the file is gone or stale (then removed)."""
        try:
            owner = json.loads(path.read_text())
            pid, host, start = int(owner["pid"]), str(owner["host"]), owner.get("start")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # half-written by a killed run
            owner, pid, host, start = {}, -1, socket.gethostname(), None
        if host == socket.gethostname() and (pid == os.getpid() or not _alive(pid, start)):
            path.unlink(missing_ok=True)  # stale: its run is dead
            return None
        return {"pid": pid, "host": host}

    def _refuse_if_held(self, path: Path) -> None:
        owner = self._owner(path)
        if owner is not None:
            raise FolderLockedError(
                f"{self.root} is being written by another {self.what} (pid {owner['pid']} on {owner['host']}, "
                f"lock {path.name}); wait for it, or delete {path} if that run is dead", path)

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.shard is not None:
            others = [self.root / ".lock"]
        else:
            others = sorted(p for p in self.root.glob(".lock*") if not p.name.endswith(".tmp"))
        for path in others:
            if path != self.path:
                self._refuse_if_held(path)
        # written whole beside it, then hard-linked into place: the link fails when the lock exists,
        # and a lock is never seen half-written
        tmp = self.root / f"{self.path.name}.{os.getpid()}.tmp"
        me = _proc_stat(os.getpid())
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": me and me[1]}))
        try:
            for _ in range(2):  # a second try after removing a stale lock
                try:
                    os.link(tmp, self.path)
                    return
                except FileExistsError:
                    self._refuse_if_held(self.path)
            self._refuse_if_held(self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
