"""The one HTML page writer (aware3d_utils.html), the figure helpers, and data3d.show's one box /
CAD overlay drawer with its box rule, including records written before `mesh_bounds` was a list."""

from __future__ import annotations

import io
import json
import re
import types

import numpy as np
import pytest
import torch
from PIL import Image

import data3d
import geom3d
from aware3d_utils import html as H
from data3d import show

LO, HI = [-0.4, -0.9, -0.3], [0.4, 0.9, 0.5]


# ----------------------------------------------------------------------------- the page writer
def test_page_escapes_text_and_keeps_fragments(tmp_path):
    rows = [("<script>", H.element("b", "bold", class_="x'y")), (3, "a & b")]
    body = [H.heading("Results <1>", 1), H.table(rows, header=("name", "value")),
            H.figure("images/a b.png", "caption \"q\"", href="../x.png"), H.bullet_list(["one", "<two>"])]
    path = H.write_page(tmp_path / "sub" / "page.html", "title <&>", body, css="td{color:red}")
    text = path.read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "<title>title &lt;&amp;&gt;</title>" in text and "td{color:red}" in text
    assert "<h1>Results &lt;1&gt;</h1>" in text
    assert "<table><tr><th>name</th><th>value</th></tr><tr><td>&lt;script&gt;</td>" in text
    assert "<td><b class='x&#x27;y'>bold</b></td>" in text and "<td>a &amp; b</td>" in text
    assert ("<figure><a href='../x.png'><img src='images/a b.png'></a><figcaption>caption &quot;q&quot;"
            "</figcaption></figure>") in text
    assert "<li>&lt;two&gt;</li>" in text and "<script>" not in text
    assert [p.name for p in path.parent.iterdir()] == ["page.html"]  # no temporary file left


def test_png_helpers_round_trip(tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    uri = H.png_data_uri(picture)
    assert uri.startswith("data:image/png;base64,")
    import base64

    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, picture)
    fig = H.saved_figure(tmp_path, "images/p.png", picture, "a <b>")
    assert fig == "<figure><img src='images/p.png'><figcaption>a &lt;b&gt;</figcaption></figure>"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "images" / "p.png")), picture)


def test_line_plot_lives_in_figures_and_nemo_run_reexports_it(tmp_path):
    from aware3d_utils.figures import line_plot_png
    from nemo.run import line_plot_png as from_nemo

    assert from_nemo is line_plot_png
    path = line_plot_png(tmp_path / "c.png", {"a": [(0, 1.0), (1, float("nan")), (2, 0.5)], "b": [(1, 0.7)]}, "t",
                         size=(200, 120))
    img = np.asarray(Image.open(path))
    assert img.shape == (120, 200, 3)
    assert ((img == (0x1F, 0x77, 0xB4)).all(-1)).sum() > 20  # series "a" drawn in the first colour


# ----------------------------------------------------------------------------- the box rule
def _obj(bounds=None, distance=4.0, size=(96, 128)):
    extra = {} if bounds is None else {"mesh_bounds": bounds}
    vp = data3d.Viewpoint(azimuth=0.5, elevation=0.3, theta=0.1, distance=distance, focal=1.0, viewport=150.0,
                          px=(size[1] - 1) / 2, py=(size[0] - 1) / 2)
    return data3d.ObjectAnnotation(category="car", bbox=(30.0, 20.0, 90.0, 70.0), viewpoint=vp, extra=extra,
                                   cad_source="procedural", cad_id="car/0000", image_size=size)


def test_object_bounds_reads_lists_and_legacy_json_strings():
    listed, legacy = _obj([LO, HI]), _obj(json.dumps([LO, HI]))
    for obj in (listed, legacy):
        lo, hi = show.object_bounds(obj)
        np.testing.assert_array_equal(lo, LO)
        np.testing.assert_array_equal(hi, HI)
    assert show.object_bounds(_obj()) is None and show.object_bounds(_obj("not json")) is None
    assert show.object_bounds(_obj([[0, 0], [1, 1]])) is None
    mesh = geom3d.cuboid_mesh([-1, -2, -3], [1, 2, 3], 30)
    lo, hi = show.object_bounds(legacy, mesh)  # a known mesh wins over the record's bounds
    np.testing.assert_allclose(lo, [-1, -2, -3])
    np.testing.assert_allclose(hi, [1, 2, 3])
    corners = show.box_corners(LO, HI)
    assert corners.shape == (8, 3) and corners[0].tolist() == LO and corners[7].tolist() == HI
    # every edge joins corners that differ in exactly one coordinate: 12 edges of a box
    assert sorted(int((corners[a] != corners[b]).sum()) for a, b in show.BOX_EDGES) == [1] * 12


def _projected(obj, points, scale=1.0):
    cam = obj.viewpoint.to_cameras(obj.image_size, dtype=torch.float64)
    uv = cam.project(torch.as_tensor(points, dtype=torch.float64)).numpy()
    return (uv + 0.5) * scale - 0.5


def _yellow(img):
    r, g, b = (img[..., k].astype(int) for k in range(3))
    return (r > 120) & (g > 100) & (b < 60) & (r - b > 100)


def test_box_drawn_where_the_camera_puts_it_and_none_without_bounds():
    obj = _obj([LO, HI])
    cam = obj.viewpoint.to_cameras(obj.image_size, dtype=torch.float64)
    alone = np.zeros((96, 128, 3), np.uint8)
    assert show.draw_box(alone, cam, show.box_corners(LO, HI))
    ys, xs = np.nonzero(_yellow(alone))
    for u, v in _projected(obj, show.box_corners(LO, HI)):  # a line ends at every projected corner
        assert ((np.abs(xs - u) <= 1.5) & (np.abs(ys - v) <= 1.5)).any(), (u, v)
    # the camera inside a big box: corners behind it, nothing drawn
    assert not show.draw_box(np.zeros((96, 128, 3), np.uint8), cam, show.box_corners([-9] * 3, [9] * 3))
    drawn = show.draw_object(np.zeros((96, 128, 3), np.uint8), obj, label=False)
    legacy = show.draw_object(np.zeros((96, 128, 3), np.uint8), _obj(json.dumps([LO, HI])), label=False)
    np.testing.assert_array_equal(drawn, legacy)
    assert (_yellow(drawn) & _yellow(alone)).sum() > 0.8 * _yellow(alone).sum()  # the axes cover a little
    # the preview draws the same picture at any thumbnail scale (here 2×)
    from datagen.preview import draw_annotation

    obj = _obj([LO, HI])
    big = np.zeros((192, 256, 3), np.uint8)
    np.testing.assert_array_equal(draw_annotation(big, obj, 2.0), show.draw_object(big, obj, scale=2.0, label=False))
    u, v = _projected(obj, show.box_corners(LO, HI), 2.0)[5]
    ys, xs = np.nonzero(_yellow(draw_annotation(big, obj, 2.0)))
    assert ((np.abs(xs - u) <= 2) & (np.abs(ys - v) <= 2)).any()
    # no box known: no box is made up, the axes (x red) mark the pose, 0.15 × distance long
    bare = _obj()
    drawn = show.draw_object(np.zeros((96, 128, 3), np.uint8), bare, label=False)
    assert not _yellow(drawn).any()
    tip = _projected(bare, [[0.15 * bare.viewpoint.distance * 0.9, 0, 0]])[0]
    patch = drawn[int(round(tip[1])) - 2:int(round(tip[1])) + 3, int(round(tip[0])) - 2:int(round(tip[0])) + 3]
    assert (patch[..., 0] > 150).any()
    assert np.array_equal(draw_annotation(np.zeros((96, 128, 3), np.uint8), bare), drawn)


def _records(tmp_path, bounds_by_name):
    img = np.full((96, 128, 3), 40, np.uint8)
    out = []
    for name, bounds in bounds_by_name.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(img).save(path)
        out.append(data3d.ImageRecord(image_path=path, image_size=(96, 128), objects=[_obj(bounds)]))
    return out


def test_nemo_report_reads_a_legacy_json_string_mesh_bounds(tmp_path):
    """Drift bug: nemo's report indexed a legacy JSON-string `mesh_bounds` as a corner
    ("[" as the low corner). The legacy record's box is now the list record's box."""
    from nemo.report import write_report

    records = _records(tmp_path, {"listed": [LO, HI], "legacy": json.dumps([LO, HI]), "none": None})
    dataset = data3d.ObjectDataset(records, crop_size=None)
    rows = []
    for i in range(3):
        item = dataset[i]
        vp = dict(zip(data3d.VIEWPOINT_KEYS, item["viewpoint"].tolist()))
        rows.append({"item": i, "viewpoint": dict(vp, azimuth=vp["azimuth"] + 0.4), "category": "car",
                     "predicted": "car", "error": 0.4, "split": "clean"})
    baseline = types.SimpleNamespace(bank=None)  # no neural mesh: the record's box is drawn
    metrics = {"baseline": {"clean": {"acc_pi6": 0.5, "n": 3}}}
    page = write_report(str(tmp_path / "eval"), metrics, {"baseline": (rows, dataset)}, {"baseline": baseline},
                        examples=3)
    text = open(page).read()
    names = re.findall(r"src='(images/[^']+)'", text)
    assert sorted(set(names)) == [f"images/baseline_{i:05d}.png" for i in range(3)]
    pictures = [np.asarray(Image.open(tmp_path / "eval" / f"images/baseline_{i:05d}.png")) for i in range(3)]
    np.testing.assert_array_equal(pictures[0], pictures[1])
    # the true pose's box (lime) sits at the projected corners, in the picture enlarged twice
    obj = records[1].objects[0]
    lime = (pictures[1][..., 1] > 200) & (pictures[1][..., 0] < 80) & (pictures[1][..., 2] < 80)
    ys, xs = np.nonzero(lime)
    for u, v in _projected(obj, show.box_corners(LO, HI), 2.0):
        assert ((np.abs(xs - u) <= 2) & (np.abs(ys - v) <= 2)).any(), (u, v)
    # without bounds and without a mesh no box is invented: the axes only, in the pose's colour
    assert not np.array_equal(pictures[2], pictures[0]) and ((pictures[2][..., 1] > 200) &
                                                              (pictures[2][..., 0] < 80)).any()
    assert "Acc@π/6" in text and "50.0% (n=3)" in text


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".JPG", ".WebP"])
def test_pose_generate_reads_every_image_suffix_nemo_pose_reads(tmp_path, suffix):
    """Drift bug: `aware3d pose generate` listed .png/.jpg/.jpeg only and silently skipped the
    .bmp/.webp that `aware3d nemo pose` reads; both now read aware3d_utils.IMAGE_SUFFIXES."""
    from aware3d.cli_pose import _image_sources
    from aware3d_utils import IMAGE_SUFFIXES

    assert suffix.lower() in IMAGE_SUFFIXES
    img = np.full((40, 48, 3), 255, np.uint8)
    img[10:30, 12:36] = (30, 60, 90)  # an object on a white background
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".png": "PNG"}[suffix.lower()]
    Image.fromarray(img).save(tmp_path / f"car{suffix}", format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    (tmp_path / "notes.txt").write_text("not an image")
    skipped: list = []
    sources = _image_sources(tmp_path, "car", None, skipped)
    assert len(sources) == 1 and skipped == []
    assert sources[0].view.name == str(tmp_path / f"car{suffix}")


def test_viewer_wireframe_box_follows_the_same_rule():
    """The 3D viewer's box for an object without a mesh: a legacy JSON-string `mesh_bounds` is read
    (it was dropped before), and no box is made up without one."""
    from aware3d.view.records import _bounds_box

    np.testing.assert_allclose(_bounds_box(_obj(json.dumps([LO, HI]))).bounds, [LO, HI])
    np.testing.assert_allclose(_bounds_box(_obj([LO, HI])).bounds, [LO, HI])
    assert _bounds_box(_obj()) is None
