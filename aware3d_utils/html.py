"""HTML report pages: the one page writer every report uses (escaping, tables, figures, images).

    from aware3d_utils import html as H
    body = [H.heading("Evaluation", 1), H.table([("clean", "91.0%")], header=("split", "Acc@π/6")),
            H.figure(H.save_png(out / "images" / "a.png", picture).relative_to(out), "an example")]
    H.write_page(out / "report.html", "nemo evaluation", body)

Text is escaped where it enters (titles, cells, captions, attribute values); an `Html` string is a
fragment that is already HTML and goes in as it is, so a fragment made here can be put into another.
Attributes are single-quoted. A page is one UTF-8 document with the shared style sheet (plus the
page's own `css`), written atomically. Images are linked (`save_png` beside the page, then `image` /
`figure` with the relative path) or embedded (`png_data_uri`, for one self-contained file).
"""

from __future__ import annotations

import base64
import html as _html
import os
from collections.abc import Iterable
from pathlib import Path

from .atomic import atomic_save, atomic_write_text

__all__ = ["Html", "esc", "join", "element", "heading", "paragraph", "bullet_list", "link", "image", "figure",
           "table", "png_bytes", "png_data_uri", "save_png", "saved_figure", "page", "write_page", "STYLE"]

# the style every page shares; a page adds its own rules with `css`
STYLE = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin-bottom:1em} "
         "td,th{padding:2px 8px;vertical-align:top} figure{display:inline-block;margin:4px;font-size:12px} "
         "figcaption{font-size:12px;color:#333}")


class Html(str):
    """A fragment of HTML: inserted as is where everything else is escaped as text."""

    __slots__ = ()


def esc(value) -> Html:
    """`value` as HTML: an `Html` fragment unchanged, anything else as escaped text (`str(value)`)."""
    return value if isinstance(value, Html) else Html(_html.escape(str(value)))


def join(parts: Iterable, sep: str = "\n") -> Html:
    """The parts (each escaped unless `Html`) one after the other."""
    return Html(sep.join(esc(p) for p in parts))


def _attrs(attrs: dict) -> str:
    # a trailing underscore lets Python keywords through (class_ -> class); None leaves the attribute out
    return "".join(f" {k.rstrip('_')}='{_html.escape(str(v))}'" for k, v in attrs.items() if v is not None)


def element(name: str, content="", **attrs) -> Html:
    """`<name attrs>content</name>` (`content` escaped unless `Html`; attribute values escaped)."""
    return Html(f"<{name}{_attrs(attrs)}>{esc(content)}</{name}>")


def heading(text, level: int = 2) -> Html:
    return element(f"h{int(level)}", text)


def paragraph(text) -> Html:
    return element("p", text)


def bullet_list(items: Iterable) -> Html:
    return element("ul", Html("".join(element("li", i) for i in items)))


def link(href: str | os.PathLike, text) -> Html:
    return element("a", text, href=Path(href).as_posix() if isinstance(href, Path) else href)


def image(src: str | os.PathLike, alt: str = "", **attrs) -> Html:
    """`<img src=… alt=…>` (a path relative to the page, or a `png_data_uri`)."""
    src = Path(src).as_posix() if isinstance(src, Path) else src
    return Html(f"<img{_attrs({'src': src, 'alt': alt or None, **attrs})}>")


def figure(src: str | os.PathLike, caption, *, href: str | os.PathLike | None = None, **attrs) -> Html:
    """An image with its caption below; with `href`, the image links there."""
    img = image(src, **attrs)
    if href is not None:
        img = link(href, img)
    return Html(f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>")


def table(rows: Iterable[Iterable], header: Iterable | None = None) -> Html:
    """`<table>` of `rows` (each a sequence of cells), with a header row when `header` is given."""
    head = "" if header is None else "<tr>" + "".join(f"<th>{esc(c)}</th>" for c in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Html(f"<table>{head}{body}</table>")


def png_bytes(picture) -> bytes:
    """A picture ((H, W, 3) or (H, W) uint8 RGB / grey array) as PNG file bytes."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(picture) -> str:
    """A picture (array, or PNG bytes) as a `data:` URI, to embed it in a self-contained page."""
    data = picture if isinstance(picture, bytes) else png_bytes(picture)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def save_png(path: str | os.PathLike, picture) -> Path:
    """Write a picture ((H, W, 3) or (H, W) uint8 RGB / grey array, or PNG bytes) to `path`
    atomically (folders made as needed); returns the path."""
    path = Path(path)
    data = picture if isinstance(picture, bytes) else png_bytes(picture)
    atomic_save(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def saved_figure(folder: str | os.PathLike, name: str, picture, caption, **attrs) -> Html:
    """Write `picture` to <folder>/<name> (`save_png`; `name` relative to the page's folder, e.g.
    "images/a.png") and return its `figure`, linked by that relative name."""
    save_png(Path(folder) / name, picture)
    return figure(Path(name).as_posix(), caption, **attrs)


def page(title: str, body: Iterable, css: str = "") -> str:
    """The whole document: doctype, title, the shared style (plus `css`) and the body parts (each
    escaped unless `Html`), one per line."""
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title>\n"
            f"<style>{STYLE} {css}</style></head><body>\n{join(body)}\n</body></html>\n")


def write_page(path: str | os.PathLike, title: str, body: Iterable, css: str = "") -> Path:
    """Write `page(title, body, css)` to `path` atomically (UTF-8); returns the path."""
    path = Path(path)
    atomic_write_text(path, page(title, body, css))
    return path
