"""bench/gpu.py stays runnable: its CPU smoke mode runs every part end to end (the CUDA comparison
skipped with a clear line), and its pure helpers behave. Nothing here is timed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"


def _module():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_gpu"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_peak_lookup_prefers_the_specific_name():
    gpu = _module()
    assert gpu.peak_for_name("NVIDIA H100 PCIe")[0] == 756.0  # not the SXM part's 989
    assert gpu.peak_for_name("NVIDIA H100 NVL")[0] == 835.0
    assert gpu.peak_for_name("NVIDIA H100 80GB HBM3")[0] == 989.4
    assert gpu.peak_for_name("NVIDIA H200")[0] == 989.4
    value, why = gpu.peak_for_name("NVIDIA GeForce RTX 4090")
    assert value is None and "--peak-tflops" in why


def test_check_verdicts():
    gpu = _module()
    assert gpu.Check("x", "error", 1e-6, 1e-5).ok
    assert not gpu.Check("x", "error", 1e-4, 1e-5).ok
    assert not gpu.Check("x", "error", float("nan"), 1e-5).ok  # NaN never passes
    assert gpu.Check("x", "agreement", 0.9995, 0.999, higher_is_better=True).ok
    assert not gpu.Check("x", "agreement", 0.99, 0.999, higher_is_better=True).ok
    assert gpu.Check("x", "error", 2e-4, 1e-4).row()[-1] == "FAIL"


def test_unknown_part_is_an_error():
    out = subprocess.run([sys.executable, str(SCRIPT), "--only", "checks,nope"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 2 and "nope" in out.stderr


@pytest.mark.slow
def test_cpu_smoke_runs_every_part():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--threads", "1"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "SKIP CUDA" in text  # the CUDA parts say that they were skipped
    assert "20/20 checks passed" in text
    for part in ("rasterizer", "fit_pose", "estimate_pose", "NeMo training", "ControlNet SD1.5",
                 "WanVACE transformer"):
        assert f"| {part} |" in text, part
    assert "| raster icosphere | pix_to_face equal (fraction) | 1 |" in text  # CPU against itself: identical
