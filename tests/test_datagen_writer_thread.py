"""The chunk writer's thread composes samples: bad geometry found there is still a counted skip,
and the result does not depend on whether a writer thread is used."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from datagen import worker as worker_mod
from datagen import writer as writer_mod
from datagen.pipeline import generate
from geom3d import GeometryError

CONFIG = {"seed": 1, "image_size": 32, "samples_per_category": 3, "occlusion": ["none", "L1"],
          "assets": [{"type": "procedural", "categories": ["car", "mug"], "count": 1}],
          "render": {"save": ["mask", "depth"]}, "writer": {"chunk_size": 4}}


def _digests(folder: Path) -> dict[str, str]:
    """md5 of every file but the preview; of the manifest all but its created and updated times."""
    def content(p: Path) -> bytes:
        if p != folder / "manifest.json":
            return p.read_bytes()
        manifest = json.loads(p.read_text())
        return json.dumps({k: v for k, v in manifest.items() if k not in ("created", "updated")}).encode()

    return {p.relative_to(folder).as_posix(): hashlib.md5(content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "preview.html"}


def test_bad_geometry_while_composing_is_a_counted_skip(tmp_path, monkeypatch):
    original = worker_mod.is_truncated
    threads: list[str] = []

    def flaky(mask):
        threads.append(threading.current_thread().name)
        if len(threads) == 2:
            raise GeometryError("a bad projection")
        return original(mask)

    monkeypatch.setattr(worker_mod, "is_truncated", flaky)
    m = generate(CONFIG, tmp_path / "ds", progress=False, preview=False)
    assert m["complete"]
    assert m["skipped"] == {"error_GeometryError": 2}  # both levels of the one sample
    assert m["images"] == 2 * 6 - 2
    assert threads and all(t.startswith("datagen-writer") for t in threads)  # composed off the main thread


def test_writer_thread_and_synchronous_writes_give_the_same_bytes(tmp_path, monkeypatch):
    generate(CONFIG, tmp_path / "threaded", progress=False, preview=False)
    original = writer_mod.ChunkWriter.__init__

    def synchronous(self, *args, **kwargs):
        kwargs["threads"] = 0
        original(self, *args, **kwargs)

    monkeypatch.setattr(writer_mod.ChunkWriter, "__init__", synchronous)
    generate(CONFIG, tmp_path / "synchronous", progress=False, preview=False)
    a, b = _digests(tmp_path / "threaded"), _digests(tmp_path / "synchronous")
    assert len(a) > 20 and a == b
