"""Shared test fixtures: real data, thread counts, and GL/optional-dependency checks."""

from __future__ import annotations

import os

import pytest
import torch

from aware3d.paths import shared_data_root

# One pytest process on 2 cores: let torch use both, but never oversubscribe in worker processes.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data():
    """The real public data folder (docs/design.md, "Real data in tests").

    Skips when missing, except under CI=true, where a missing folder is a failure.
    """
    root = shared_data_root()
    if not root.is_dir():
        reason = f"real data folder {root} is missing (set AWARE3D_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def malformed_world(tmp_path_factory):
    """The inputs of the malformed-input tables (tests/_malformed.py: build_world; tests/test_malformed_*.py),
    built once for all the files, with one torch thread."""
    from _malformed import build_world

    from aware3d_utils import torch_threads

    with torch_threads(1):
        return build_world(tmp_path_factory.mktemp("malformed_methods"))
