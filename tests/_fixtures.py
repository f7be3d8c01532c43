"""Fixtures a test module opts into by importing them (conftest's would apply to every test):

    from _fixtures import one_thread  # noqa: F401  (autouse: this module runs single-threaded)
"""

from __future__ import annotations

import pytest

from aware3d_utils import torch_threads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the module's tests and its module fixtures, the caller's count restored
    after: training, pose fitting and tiny diffusion models run many small ops, and two threads thrash
    on a shared 2-core machine (and one thread keeps their numbers bit-exact)."""
    with torch_threads(1):
        yield
