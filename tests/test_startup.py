"""Start-up stays light: `import geom3d` and a small randomised datagen run never pull in torch's
compiler stack (torch._dynamo, sympy: seconds of imports). roma, which imports torch._dynamo, is
imported on first use; geom3d broadcasts batch shapes without torch.broadcast_shapes, whose first
call imports sympy. Nothing here is timed: the modules loaded are checked."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from geom3d.dtypes import broadcast_shapes

ROOT = Path(__file__).resolve().parents[1]


def _shapes():
    sizes = (0, 1, 2, 3)
    one = [()] + [(a,) for a in sizes] + [(a, b) for a in sizes for b in sizes]
    return list(itertools.product(one, repeat=2)) + [((2, 1, 3), (1, 3), (2, 1, 1)), ((), (), ()), ((4,),)]


@pytest.mark.parametrize("shapes", _shapes())
def test_broadcast_shapes_matches_torch(shapes):
    try:
        expected = torch.broadcast_shapes(*shapes)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            broadcast_shapes(*shapes)
        return
    got = broadcast_shapes(*shapes)
    assert got == expected and isinstance(got, torch.Size)


def test_import_and_small_datagen_run_skip_the_compiler_stack(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        heavy = ("torch._dynamo", "sympy", "roma")
        import geom3d
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        from datagen.pipeline import generate
        m = generate({{"seed": 0, "image_size": 32, "samples_per_category": 2, "writer": {{"chunk_size": 2}},
                      "assets": [{{"type": "procedural", "categories": ["car"], "count": 1}}]}},
                     {str(tmp_path / "ds")!r}, progress=False, preview=False)
        assert m["complete"] and m["images"] == 2, m
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        R = geom3d.axis_angle_to_matrix([0.0, 0.0, 0.5])  # roma on first use
        assert "roma" in sys.modules and abs(float(R[0, 0]) - 0.8775825618903728) < 1e-6
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


# Modules that `import geom3d` / `import datagen` must not load: each is imported inside the
# functions that need it (OpenCV and scipy are needed by a datagen run, not by its import or --help).
HEAVY = ("torch._dynamo", "sympy", "roma", "scipy", "cv2", "transformers", "diffusers", "open3d",
         "ray", "viser", "matplotlib", "trimesh")


@pytest.mark.parametrize("package", ["geom3d", "datagen", "data3d"])
def test_package_import_loads_no_heavy_module(package):
    code = (f"import sys; import {package}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"import {package} loaded: {out.stdout.strip()}"


def test_lazy_module_imports_on_first_use():
    code = textwrap.dedent("""
        import sys
        from aware3d_utils.optional import lazy_module
        assert "colorsys" not in sys.modules
        colorsys = lazy_module("colorsys")
        assert "colorsys" not in sys.modules
        assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
        assert "colorsys" in sys.modules and colorsys.hsv_to_rgb is sys.modules["colorsys"].hsv_to_rgb
        assert lazy_module("colorsys") is sys.modules["colorsys"]  # already imported: the module itself
        missing = lazy_module("no_such_module_aware3d")
        try:
            missing.anything
        except ImportError as exc:
            assert "no_such_module_aware3d" in str(exc) and "pip install" in str(exc), exc
        else:
            raise AssertionError("no ImportError")
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_datagen_help_imports_no_torch():
    """`aware3d datagen --help` (and `import methodkit` / `import datagen`) load no torch: methodkit's and
    datagen's torch-backed names load on first use (`aware3d_utils.lazy_exports`), and still resolve."""
    code = textwrap.dedent("""
        import sys
        from aware3d import cli
        try:
            cli.main(["datagen", "--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        assert "torch" not in sys.modules, "torch imported"
        import datagen, methodkit
        assert "torch" not in sys.modules, "torch imported"
        from datagen.pipeline import generate
        assert datagen.generate is generate and methodkit.Trainer.__name__ == "Trainer" and "torch" in sys.modules
        try:
            methodkit.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
