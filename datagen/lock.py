"""datagen's folder lock: `aware3d_utils.lock` (moved there so the run folder below the methods shares it)."""

from aware3d_utils.lock import FolderLock, FolderLockedError

__all__ = ["FolderLockedError", "FolderLock"]
