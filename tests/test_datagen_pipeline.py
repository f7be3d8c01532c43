"""datagen end to end: exact annotations, resume after SIGKILL, shards / workers / Ray give the same
bytes, broken assets, config errors, ControlNet mode, the demo and its preview."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trimesh
import yaml

import geom3d
from aware3d.cli import main as cli_main
from data3d import load_records
from datagen.config import ConfigError, load_config
from datagen.demo import run_demo_dataset
from datagen.pipeline import generate, load_sample_mesh
from datagen.plan import make_plan
from datagen.preview import contact_sheet, write_preview
from geom3d import raster
from methodkit import MANIFEST_KEYS, check_manifest

REPO = Path(__file__).resolve().parents[1]


def _config(**over) -> dict:
    cfg = {
        "seed": 3,
        "image_size": 64,
        "samples_per_category": 4,
        "occlusion": ["none", "L1"],
        "assets": [{"type": "procedural", "categories": ["car", "chair"], "count": 2}],
        "render": {"save": ["mask", "depth"]},
        "writer": {"chunk_size": 3},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def _digests(folder: Path) -> dict[str, str]:
    """md5 of every file (records, images, masks, manifest...), except the HTML preview; of the manifest
    all but its created and updated times (two runs start at two times)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "preview.html":
            data = p.read_bytes()
            if p == folder / "manifest.json":
                times = ("created", "updated")
                data = json.dumps({k: v for k, v in json.loads(data).items() if k not in times}).encode()
            out[p.relative_to(folder).as_posix()] = hashlib.md5(data).hexdigest()
    return out


def _read_mask(folder: Path, rel: str) -> np.ndarray:
    img = cv2.imread(str(folder / rel), cv2.IMREAD_UNCHANGED)
    assert img is not None, rel
    return img > 127


def _check_exact(folder: Path, meshes: dict, min_iou: float = 0.99) -> int:
    """Rasterize each record's mesh with its stored camera (geom3d.rasterize, not the renderer that
    made the dataset) and compare with the saved mask, bbox, visible mask and depth."""
    records = load_records(folder)
    assert records
    for r in records:
        obj = r.objects[0]
        mesh = meshes[obj.extra["asset"]]
        cam = obj.viewpoint.to_cameras(r.image_size, dtype=torch.float64)
        frags = raster.rasterize((mesh.vertices.double(), mesh.faces), cam.reshape(1))
        proj = (frags.pix_to_face[0] >= 0).numpy()
        mask = _read_mask(folder, r.extra["mask_path"])
        iou = (proj & mask).sum() / (proj | mask).sum()
        assert iou >= min_iou, (r.image_path.name, iou)
        ys, xs = np.nonzero(proj)
        assert np.allclose(obj.bbox, (xs.min(), ys.min(), xs.max(), ys.max()), atol=1.0)
        visible = _read_mask(folder, r.extra["visible_mask_path"]) if "visible_mask_path" in r.extra else mask
        assert not (visible & ~mask).any()
        assert np.isclose(obj.visible_fraction, visible.sum() / mask.sum())
        level = r.extra["occlusion_level"]
        lo, hi = {"none": (1, 1), "L1": (0.6, 0.8), "L2": (0.4, 0.6), "L3": (0.2, 0.4)}[level]
        assert lo - 1e-9 <= obj.visible_fraction <= hi + 1e-9
        assert obj.occlusion == {"none": 0, "L1": 1, "L2": 2, "L3": 3}[level]
        if "depth_path" in r.extra:
            depth = cv2.imread(str(folder / r.extra["depth_path"]), cv2.IMREAD_UNCHANGED) * r.extra["depth_scale"]
            both = proj & mask
            # the two renderers may pick different faces at a pixel whose centre lies on an edge: allow
            # one such pixel in 500 (as the mask IoU allows), every other depth to quantisation
            close = np.isclose(depth[both], frags.depth[0].numpy()[both], rtol=2e-3, atol=2e-4)
            assert close.mean() >= 0.998, (r.image_path.name, int((~close).sum()), int(both.sum()))
        image = cv2.imread(str(r.image_path), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == r.image_size
    return len(records)


def test_annotations_are_exact_on_procedural_assets(tmp_path):
    cfg = load_config(_config(occlusion=["none", "L1", "L3"], camera={"principal_jitter": 0.1},
                              sampler={"inplane_sd": 20.0}))
    manifest = generate(cfg, tmp_path / "ds", progress=False)
    assert manifest["complete"] and manifest["images"] == 2 * 4 * 3 - sum(manifest["skipped"].values())
    plan = make_plan(cfg)
    meshes = {pa.key: plan.sources[pa.source_index].load(pa.asset) for pa in plan.assets}
    # the procedural library rebuilds the same mesh from (category, seed), independently of datagen
    from data3d import procedural

    for key, mesh in meshes.items():
        cat, seed = key.split(":")[1].split("/")
        torch.testing.assert_close(mesh.vertices, procedural.make(cat, int(seed)).vertices, rtol=0, atol=0)
    assert _check_exact(tmp_path / "ds", meshes) >= 20


@pytest.mark.realdata
def test_annotations_are_exact_on_pascal3d_cad_models(shared_data, tmp_path):
    root = shared_data / "pascal3d_cad"
    cfg = load_config(_config(image_size=96, samples_per_category=3, occlusion=["none"],
                              assets=[{"type": "off", "root": str(root), "categories": ["car", "aeroplane"],
                                       "name": "pascal3d"}]))
    manifest = generate(cfg, tmp_path / "ds", progress=False)
    assert manifest["complete"]
    records = load_records(tmp_path / "ds")
    meshes = {}
    for r in records:  # each record names its CAD model; load it straight from the OFF file
        obj = r.objects[0]
        assert obj.cad_source == "pascal3d" and obj.cad_index is not None
        meshes[obj.extra["asset"]] = geom3d.Mesh.load(root / obj.category / f"{obj.cad_index:02d}.off")
    assert {r.objects[0].category for r in records} == {"car", "aeroplane"}
    assert _check_exact(tmp_path / "ds", meshes) == len(records) >= 5


def test_extra_outputs_and_transparent_background(tmp_path):
    cfg = load_config(_config(samples_per_category=2, occlusion=["none", "L2"],
                              randomization={"background": {"noise": 0, "gradient": 0, "solid": 0, "transparent": 1}},
                              render={"save": ["mask", "depth", "normal", "edges"]}, edges={"method": "geometry"}))
    generate(cfg, tmp_path / "ds", progress=False)
    records = load_records(tmp_path / "ds")
    assert records
    for r in records:
        rgba = cv2.imread(str(r.image_path), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (*r.image_size, 4)
        mask = _read_mask(tmp_path / "ds", r.extra["mask_path"])
        alpha = rgba[..., 3] > 0
        if r.extra["occlusion_level"] == "none":
            np.testing.assert_array_equal(alpha, mask)
        else:  # the occluders are opaque too
            assert (alpha >= mask).all() and alpha.sum() > mask.sum()
        normal = cv2.cvtColor(cv2.imread(str(tmp_path / "ds" / r.extra["normal_path"])), cv2.COLOR_BGR2RGB)
        n = normal[mask].astype(np.float64) / 255 * 2 - 1
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=0.02)
        # turned towards the camera: against the viewing ray of its pixel (camera frame)
        K = r.objects[0].cameras.K.double().numpy()
        v, u = np.nonzero(mask)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(len(u))], 1)
        assert ((n * rays).sum(1) < 0.03 * np.linalg.norm(rays, axis=1)).all()
        edges = cv2.imread(str(tmp_path / "ds" / r.extra["edges_path"]), cv2.IMREAD_GRAYSCALE) > 0
        # geometric edges: the silhouette is all there, and nothing lies outside the object
        # (the object pixels with a 4-neighbour outside it: the side geometry_edges marks)
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        outline = mask & ~cv2.erode(mask.astype(np.uint8), cross, borderValue=1).astype(bool)
        assert not (edges & ~mask).any() and (edges & outline).sum() >= 0.98 * outline.sum()


@pytest.mark.slow  # two `python -m aware3d` start-ups
def test_kill_midway_and_resume_is_byte_identical(tmp_path):
    cfg = _config(samples_per_category=8, assets=[{"type": "procedural", "categories": ["car", "chair", "mug"],
                                                   "count": 2}])
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    reference = tmp_path / "reference"
    generate(load_config(path), reference, progress=False)

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "aware3d", "datagen", "--config", str(path), "--out", str(out), "--no-progress",
           "--no-preview"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list((out / "chunks").glob("c*.json")) if (out / "chunks").is_dir() else []
            if len(done) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    manifest = json.loads((out / "manifest.json").read_text())
    check_manifest(manifest)  # the run-folder keys every method's manifest holds
    assert not manifest["complete"] and manifest["status"] == "running" and manifest["kind"] == "datagen"
    assert _digests(out) != _digests(reference)
    # what a kill during a write leaves: temporaries of a started chunk's image and shard
    plan = make_plan(load_config(path))
    c = next(c for c in range(plan.n_chunks) if not (out / "chunks" / f"c{c:06d}.json").exists())
    (out / ".partial" / f"c{c:06d}").mkdir(parents=True, exist_ok=True)  # started (maybe just now)
    spec = plan.chunk(c)[-1]
    (out / "images" / spec.category).mkdir(parents=True, exist_ok=True)
    (out / "images" / spec.category / f".{spec.sample_id}_L1.png.k7q2.tmp").write_bytes(b"half a png")
    (out / f".records-c{c:06d}.x1y2.tmp.npz").write_bytes(b"half a shard")
    (out / ".manifest.json.u8v9.tmp").write_text('{"format": "aware3d.dat')  # a kill during a manifest write

    resumed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _digests(out) == _digests(reference)
    assert not (out / ".partial").exists()
    resumed = json.loads((out / "manifest.json").read_text())
    check_manifest(resumed)
    assert resumed["complete"] and resumed["status"] == "complete" and resumed["created"] == manifest["created"]
    assert resumed["step"] == resumed["samples_done"] == resumed["planned_samples"] == 24


def test_shards_and_resume_of_a_finished_run(tmp_path):
    cfg = load_config(_config())
    generate(cfg, tmp_path / "plain", progress=False)
    for k in (1, 0, 2):  # three shard processes, in any order, into one folder
        m = generate(cfg, tmp_path / "sharded", shard=f"{k}/3", progress=False)
        assert m["complete"] == (k == 2) and m["status"] == ("complete" if k == 2 else "stopped")
        check_manifest(json.loads((tmp_path / "sharded" / "manifest.json").read_text()))
        if k == 1:  # as a folder written before the manifest took the run-folder keys (version 1) left it
            old = {key: v for key, v in m.items() if key not in MANIFEST_KEYS}
            old.update(format="aware3d.datagen", version=1, environment=m["versions"])
            (tmp_path / "sharded" / "manifest.json").write_text(json.dumps(old))
    assert _digests(tmp_path / "sharded") == _digests(tmp_path / "plain")
    before = _digests(tmp_path / "plain")
    again = generate(cfg, tmp_path / "plain", progress=False)  # nothing left to do
    assert again["complete"] and _digests(tmp_path / "plain") == before


def test_resuming_with_another_config_is_an_error(tmp_path):
    generate(load_config(_config(samples_per_category=1)), tmp_path / "ds", progress=False)
    with pytest.raises(ConfigError, match="different config"):
        generate(load_config(_config(samples_per_category=1, seed=4)), tmp_path / "ds", progress=False)
    # workers do not change the dataset: resuming with other workers is fine
    generate(load_config(_config(samples_per_category=1, workers=2)), tmp_path / "ds", progress=False)


def test_broken_assets_are_skipped_and_counted(tmp_path):
    meshes = tmp_path / "meshes" / "box"
    meshes.mkdir(parents=True)
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(meshes / "good.obj")
    (meshes / "corrupt.ply").write_bytes(b"ply\nformat nonsense\n\x00\x01")
    (meshes / "empty.off").write_text("OFF\n0 0 0\n")
    cfg = load_config(_config(samples_per_category=6, occlusion=["none", "L2"],
                              assets=[{"type": "folder", "root": str(tmp_path / "meshes"), "category": "box"}]))
    m = generate(cfg, tmp_path / "ds", progress=False)
    assert m["complete"] and m["planned_samples"] == 6
    assert set(m["broken_assets"]) == {"folder:box/corrupt.ply", "folder:box/empty.off"}
    assert m["broken_assets"]["folder:box/empty.off"].startswith("empty_mesh")
    assert m["skipped"]["broken_asset"] == 4 * 2  # 2 views of each broken asset, 2 levels each
    assert m["images"] == 2 * 2 - m["skipped"].get("occlusion_failed", 0)
    records = load_records(tmp_path / "ds")
    assert {r.objects[0].cad_id for r in records} == {"box/good.obj"}


@pytest.mark.realdata
def test_a_real_broken_shapenet_model_is_counted(shared_data, tmp_path):
    cfg = load_config(_config(samples_per_category=2, occlusion=["none"],
                              assets=[{"type": "folder", "root": str(shared_data / "shapenet_v2"),
                                       "category": "chair", "up": "+y", "front": "+z"}]))
    m = generate(cfg, tmp_path / "ds", progress=False)
    broken = [k for k in m["broken_assets"] if "923ce819405ae29230c72ee872e188e1" in k]
    assert broken and m["broken_assets"][broken[0]].startswith("missing_texture")
    assert m["skipped"]["broken_asset"] == 1 and m["images"] == 1


def test_cli_errors_name_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler:\n  elevation_sd: 10\n")
    assert cli_main(["datagen", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "sampler.elevation_sd: unknown key" in err and "bad.yaml" in err
    assert cli_main(["datagen", "--out", str(tmp_path / "x"), "--set", "sampler.polar_sd=0"]) == 2
    assert "sampler.polar_sd: must be > 0" in capsys.readouterr().err
    assert cli_main(["datagen", "--out", str(tmp_path / "x"), "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_cli_generates_and_previews(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(samples_per_category=2)))
    assert cli_main(["datagen", "--config", str(cfg), "--out", str(tmp_path / "ds"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "8 images (complete)" in out
    page = (tmp_path / "ds" / "preview.html").read_text()
    assert page.count("data:image/png;base64,") == 8
    assert cli_main(["datagen", "preview", "--in", str(tmp_path / "ds"), "--max-images", "3"]) == 0
    assert (tmp_path / "ds" / "preview.html").read_text().count("<figure>") == 3


@pytest.mark.slow  # trains G2's pose classifier twice (tiny, one epoch)
def test_cli_filter_runs_the_kfold_filter(tmp_path, capsys):
    pytest.importorskip("datagen.filtering", reason="datagen.filtering (G2's filter) missing")
    generate(load_config(_config(samples_per_category=4, occlusion=["none"])), tmp_path / "ds", progress=False)
    backbone = "{embedding_size: 8, hidden_sizes: [8, 16], depths: [1, 1], layer_type: basic}"
    argv = ["datagen", "filter", "--in", str(tmp_path / "ds"), "--out", str(tmp_path / "kept"), "--k", "2",
            "--keep-ratio", "0.5", "--option", "epochs=1", "--option", f"backbone={backbone}", "--option",
            "image_size=32", "--no-progress"]
    assert cli_main(argv) == 0
    assert "kept 4 of 8 samples" in capsys.readouterr().out
    kept = load_records(tmp_path / "kept")
    assert len(kept) == 4 and all(r.image_path.is_file() for r in kept)
    assert (tmp_path / "ds" / "kcf" / "scores.json").is_file()
    assert cli_main(argv[:4] + ["--out", str(tmp_path / "ds")]) == 2  # never into the dataset itself
    assert cli_main(argv + ["--option", "colour=1"]) == 2
    assert "colour" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_matches_the_plain_path(tmp_path):
    ray = pytest.importorskip("ray")
    cfg = load_config(_config())
    generate(cfg, tmp_path / "plain", progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        m = generate(cfg, tmp_path / "ray", ray=True, progress=False)
    finally:
        ray.shutdown()
    assert m["complete"] and not ray.is_initialized()
    assert _digests(tmp_path / "ray") == _digests(tmp_path / "plain")


@pytest.mark.slow
def test_worker_processes_match_the_plain_path(tmp_path):
    cfg = load_config(_config())
    generate(cfg, tmp_path / "plain", progress=False)
    m = generate(cfg, tmp_path / "pool", workers=2, progress=False)
    assert m["complete"]
    assert _digests(tmp_path / "pool") == _digests(tmp_path / "plain")


@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory):
    controlnet = pytest.importorskip("datagen.controlnet", reason="datagen.controlnet (G2's ControlNet stage) missing")
    pytest.importorskip("diffusers")
    return controlnet.build_tiny_pipeline(tmp_path_factory.mktemp("tiny_controlnet"))


def _controlnet_config(model, checks: bool) -> dict:
    return _config(mode="controlnet", samples_per_category=2, occlusion=["none", "L2"],
                   assets=[{"type": "procedural", "categories": ["car"], "count": 2}],
                   render={"save": ["mask", "edges"]},
                   controlnet={"model": str(model), "steps": 2, "batch_size": 2, "image_size": 64},
                   checks={"enabled": checks})


def test_controlnet_mode_with_a_tiny_pipeline(tiny_controlnet, tmp_path):
    from datagen.controlnet import ControlNetGenerator

    cfg = load_config(_controlnet_config(tiny_controlnet, checks=False))
    m = generate(cfg, tmp_path / "ds", progress=False)
    assert m["complete"] and m["images"] + m["skipped"].get("occlusion_failed", 0) == 4
    records = load_records(tmp_path / "ds")
    plain = [r for r in records if r.extra["occlusion_level"] == "none"]
    assert len(plain) == 2 and len({r.extra["generation_seed"] for r in plain}) == 2
    # regenerate each sample alone from what its record stores: the same image, bit for bit
    gen = ControlNetGenerator(cfg["controlnet"])
    for r in plain:
        assert r.extra["appearance"] == "controlnet" and r.objects[0].caption == r.extra["prompt"]
        edges = cv2.imread(str(tmp_path / "ds" / r.extra["edges_path"]), cv2.IMREAD_GRAYSCALE)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the generating worker ran: CPU kernels round by thread count
        try:
            again = gen.regenerate(np.repeat(edges[..., None], 3, axis=2), r.extra["prompt"],
                                   r.extra["negative_prompt"], r.extra["generation_seed"])
        finally:
            torch.set_num_threads(threads)
        stored = cv2.cvtColor(cv2.imread(str(r.image_path)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(again, stored)
    meshes = {k: load_sample_mesh(cfg, k) for k in {r.objects[0].extra["asset"] for r in records}}
    _check_exact(tmp_path / "ds", meshes)


def test_controlnet_cheap_checks_skip_and_count(tiny_controlnet, tmp_path):
    pytest.importorskip("datagen.filtering", reason="datagen.filtering (G2's checks) missing")
    from datagen.filtering import CHECK_REASONS

    m = generate(load_config(_controlnet_config(tiny_controlnet, checks=True)), tmp_path / "ds", progress=False)
    # the tiny model paints noise that follows no edge: every image fails a check, counted by reason
    assert m["complete"] and m["images"] + sum(m["skipped"].values()) == 4
    reasons = {k for k in m["skipped"] if k.startswith("check_")}
    assert reasons and all(k[len("check_"):] in CHECK_REASONS for k in reasons)
    assert sum(m["skipped"][k] for k in reasons) == 4 - m["images"]


def test_demo_dataset_and_preview(tmp_path):
    out = run_demo_dataset(tmp_path / "demo")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["categories"]) >= 4
    assert manifest["images"] >= 50
    page = (out / "preview.html").read_text()
    assert page.count("<figure>") >= 24
    sheet = contact_sheet(out, max_images=6, columns=3, size=96)
    assert sheet.shape == (2 * 96, 3 * 96, 3)
    # the drawn cuboid is where the record's camera puts it: yellow pixels at a projected corner
    r = load_records(out)[0]
    obj = r.objects[0]
    from datagen.preview import draw_annotation

    image = np.zeros((*r.image_size, 3), np.uint8)
    drawn = draw_annotation(image, obj)
    assert isinstance(obj.extra["mesh_bounds"], list) and obj.mesh_ref.count("/") == 1  # procedural:car/0000
    lo, hi = (np.asarray(b) for b in obj.extra["mesh_bounds"])
    corner = torch.tensor([[lo[0], lo[1], lo[2]]], dtype=torch.float64)
    u, v = obj.viewpoint.to_cameras(r.image_size, dtype=torch.float64).project(corner)[0].round().long().tolist()
    if 2 <= u < r.image_size[1] - 2 and 2 <= v < r.image_size[0] - 2:
        patch = drawn[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3)
        assert (patch.max(1) > 0).any()
    assert write_preview(out, max_images=4).read_text().count("<figure>") == 4


def test_unusable_sampler_settings_fail_before_any_sample(tmp_path):
    records = {"strategy": "match_dataset", "records": str(tmp_path / "nothing-here")}
    with pytest.raises(ConfigError, match=r"sampler\.records"):
        generate(load_config(_config(sampler=records)), tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match=r"sampler\.per_category\.carr"):
        generate(load_config(_config(sampler={"per_category": {"carr": {"distance": 3.0}}})), tmp_path / "b",
                 progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_outputs_get_the_usual_file_permissions(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    generate(load_config(_config(samples_per_category=1)), tmp_path / "ds", progress=False)
    assert (tmp_path / "ds" / "preview.html").is_file()  # generate() from Python writes the preview too
    files = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in files)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["versions"]["torch"] == torch.__version__
