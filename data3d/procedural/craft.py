"""Aircraft and boats (built in metres, nose / bow towards −y, z up)."""

from __future__ import annotations

import math

import numpy as np

from . import palette
from .assembly import Assembly, Rng
from .primitives import (
    box,
    cylinder,
    cylinder_between,
    lathe,
    loft,
    recolor,
    rotate,
    rounded_box,
    superellipsoid,
    translate,
    warp,
)
from .shapes import airfoil_loop, side_extrusion

__all__ = ["build_aeroplane", "build_boat"]

AEROPLANE_STYLES = ("airliner", "regional", "light", "fighter")


def _along_y(mesh):
    """A lathe built about +z turned so that its axis runs along +y (profile start at the origin)."""
    return rotate(mesh, "x", -math.pi / 2)


def _surface(span: float, root_chord: float, taper: float, sweep: float, dihedral: float, thickness: float,
             color, vertical: bool = False, sections: int = 2):
    """A wing (or fin, with `vertical`) from its root at the origin: the leading edge of the root at
    y = 0, span along +x (+z for a fin), chord along +y, swept back by `sweep`, raised by `dihedral`."""
    loops = []
    for eta in np.linspace(0.0, 1.0, sections):
        chord = root_chord * (1 - (1 - taper) * eta)
        af = airfoil_loop(chord, thickness * (1 - 0.25 * eta), 16)
        le = eta * span * math.tan(sweep)
        rise = eta * span * math.tan(dihedral)
        if vertical:
            loops.append(np.stack([af[:, 1], le + af[:, 0], np.full(len(af), eta * span)], 1))
        else:
            loops.append(np.stack([np.full(len(af), eta * span), le + af[:, 0], rise + af[:, 1]], 1))
    return loft(np.stack(loops), color)


def build_aeroplane(rng: Rng, asm: Assembly) -> dict:
    """Airliner (2 or 4 wing engines), regional jet (rear engines, T-tail), light propeller
    aircraft (high wing, fixed gear) or fighter (delta wing, canopy, one or two fins)."""
    style = rng.cycle(AEROPLANE_STYLES)
    body = rng.jitter(rng.choice(palette.MILITARY if style == "fighter" else palette.AIRFRAME), 0.02)
    livery = rng.choice(palette.LIVERY) if style != "fighter" else body
    if style == "airliner":
        L = rng.uniform(32.0, 60.0)
        R = L * rng.uniform(0.040, 0.050)
        span, chord, taper = L * rng.uniform(0.90, 1.05), L * rng.uniform(0.16, 0.20), rng.uniform(0.25, 0.35)
        sweep, dihedral = math.radians(rng.uniform(25, 35)), math.radians(rng.uniform(4, 7))
        wing_z, wing_y = -0.45 * R, rng.uniform(0.36, 0.42)
    elif style == "regional":
        L = rng.uniform(25.0, 35.0)
        R = L * rng.uniform(0.048, 0.056)
        span, chord, taper = L * rng.uniform(0.85, 0.98), L * rng.uniform(0.13, 0.16), rng.uniform(0.30, 0.40)
        sweep, dihedral = math.radians(rng.uniform(18, 26)), math.radians(rng.uniform(3, 6))
        wing_z, wing_y = -0.5 * R, rng.uniform(0.40, 0.46)
    elif style == "light":
        L = rng.uniform(7.5, 9.0)
        R = L * rng.uniform(0.070, 0.080)
        span, chord, taper = L * rng.uniform(1.25, 1.40), rng.uniform(1.4, 1.6), rng.uniform(0.7, 1.0)
        sweep, dihedral = math.radians(rng.uniform(0, 3)), math.radians(rng.uniform(1, 3))
        wing_z, wing_y = 1.0 * R, rng.uniform(0.24, 0.30)
    else:
        L = rng.uniform(15.0, 19.0)
        R = L * rng.uniform(0.045, 0.055)
        span, chord, taper = L * rng.uniform(0.55, 0.65), L * rng.uniform(0.40, 0.48), rng.uniform(0.08, 0.15)
        sweep, dihedral = math.radians(rng.uniform(45, 55)), 0.0
        wing_z, wing_y = 0.0, rng.uniform(0.42, 0.48)
    yn = -L / 2  # nose
    nose_len = R * (rng.uniform(1.6, 2.2) if style != "fighter" else rng.uniform(4.0, 5.0))
    tail_len = L * (rng.uniform(0.22, 0.28) if style != "light" else 0.45)
    r_tail = R * (0.18 if style != "fighter" else 0.75)

    # fuselage: nose (elliptic, or an ogive for the fighter), barrel, tail cone; tail swept up
    th = np.linspace(0.0, math.pi / 2, 8)[1:]
    if style == "fighter":
        s = np.linspace(0, 1, 8)[1:]
        nose = [(R * si**0.6, nose_len * si) for si in s]
    else:
        nose = [(R * math.sin(t), nose_len * (1 - math.cos(t))) for t in th]
    tail = [(r_tail + (R - r_tail) * math.cos(t), L - tail_len * (1 - math.sin(t)))
            for t in np.linspace(0.0, math.pi / 2, 6)[1:]]
    prof = [(0.0, 0.0)] + nose + [(R, L - tail_len)] + tail[:-1] + [(r_tail, L), (0.0, L)]
    fus = translate(_along_y(lathe(prof, body, 24)), (0.0, yn, 0.0))
    y_tail0 = L / 2 - tail_len
    sweep_up = R * (0.55 if style != "fighter" else 0.1)

    def upsweep(v):
        s = np.clip((v[:, 1] - y_tail0) / tail_len, 0.0, 1.0)
        v[:, 2] += sweep_up * s**1.6
        return v

    asm.add("fuselage", warp(fus, upsweep))
    # cockpit glazing near the nose
    if style == "fighter":
        canopy = superellipsoid((0.55 * R, 0.18 * L, 0.55 * R), 0.9, 0.9, palette.DARK_GLASS, 8, 16)
        asm.add("cockpit", translate(canopy,
                                     (0.0, yn + nose_len * 1.05, 0.75 * R)))
    else:
        yc = yn + nose_len * 0.78
        asm.add("cockpit", translate(superellipsoid((0.62 * R, 0.12 * nose_len + 0.15, 0.22 * R), 1.0, 1.0,
                                                    palette.DARK_GLASS, 6, 16), (0.0, yc, 0.78 * R)))
    # wings (right, mirrored to the left)
    y_root = yn + wing_y * L
    wing = _surface(span / 2, chord, taper, sweep, dihedral, 0.12 if style != "fighter" else 0.05, body)
    asm.add("wing", translate(wing, (0.0, y_root, wing_z)), mirrored=True)
    # tail: horizontal stabiliser and fin
    fin_h = R * (rng.uniform(2.2, 2.8) if style != "light" else rng.uniform(2.3, 2.8))
    fin_chord = L * (rng.uniform(0.13, 0.17) if style != "fighter" else 0.16)
    fin_sweep = math.radians(rng.uniform(35, 48) if style != "light" else rng.uniform(20, 35))
    y_fin = L / 2 - fin_chord - L * 0.02
    z_fin = sweep_up + 0.4 * R
    twin = style == "fighter" and rng.chance(0.5)
    fin = _surface(fin_h, fin_chord, 0.4, fin_sweep, 0.0, 0.10, livery, vertical=True)
    if twin:
        fin = rotate(fin, "y", math.radians(15))
        asm.add("fin", translate(fin, (0.7 * R, y_fin - 0.05 * L, 0.2 * R)), mirrored=True)
    else:
        asm.add("fin", translate(fin, (0.0, y_fin, z_fin - 0.3 * R)))
    t_tail = style == "regional"
    stab_span = span * (0.18 if style != "fighter" else 0.22)
    stab = _surface(stab_span, fin_chord * 0.8, 0.45, sweep * 1.05 if style != "light" else 0.0, 0.05, 0.09, body)
    if t_tail:
        y_stab = y_fin + fin_h * math.tan(fin_sweep) - 0.1 * fin_chord
        asm.add("stabiliser", translate(stab, (0.0, y_stab, z_fin - 0.3 * R + fin_h)), mirrored=True)
    else:
        asm.add("stabiliser", translate(stab, (0.0, L / 2 - fin_chord * 0.8 - L * 0.02, sweep_up * 0.8)), mirrored=True)

    # engines, propeller, gear
    n_engines = 0
    if style == "airliner":
        n_engines = 4 if rng.chance(0.25) else 2
        re_ = R * (rng.uniform(0.45, 0.6) if n_engines == 2 else 0.4)
        le_ = re_ * 3.2
        positions = [0.34] if n_engines == 2 else [0.28, 0.58]
        for eta in positions:
            x = eta * span / 2
            y_le = y_root + x * math.tan(sweep)
            z_w = wing_z + x * math.tan(dihedral)
            y0, zc = y_le - 0.45 * le_, z_w - re_ * 1.15
            prof = [(0.0, 0.0), (0.92 * re_, 0.0), (re_, 0.15 * le_), (re_, 0.6 * le_), (0.65 * re_, le_), (0.0, le_)]
            asm.add("engine", translate(_along_y(lathe(prof, livery if rng.chance(0.3) else body, 20)), (x, y0, zc)),
                    mirrored=True)
            asm.add("engine_intake", translate(_along_y(cylinder(0.85 * re_, 0.04 * le_, palette.DARK, 20)),
                                               (x, y0 - 0.01 * le_, zc)), mirrored=True)
            asm.add("pylon", translate(box((0.2 * re_, 0.7 * le_, 1.2 * re_), body),
                                       (x, y0 + 0.55 * le_, zc + 0.8 * re_)),
                    mirrored=True)
    elif style == "regional":
        n_engines = 2
        re_ = R * 0.42
        le_ = re_ * 3.4
        x, y0, zc = R + re_ * 1.3, y_tail0 - 0.1 * tail_len, 0.35 * R + sweep_up * 0.1
        prof = [(0.0, 0.0), (0.92 * re_, 0.0), (re_, 0.15 * le_), (re_, 0.6 * le_), (0.65 * re_, le_), (0.0, le_)]
        asm.add("engine", translate(_along_y(lathe(prof, body, 20)), (x, y0, zc)), mirrored=True)
        asm.add("engine_intake", translate(_along_y(cylinder(0.85 * re_, 0.04 * le_, palette.DARK, 20)),
                                           (x, y0 - 0.01 * le_, zc)), mirrored=True)
        asm.add("pylon", translate(box((x, 0.5 * le_, 0.25 * re_), body), (x / 2, y0 + 0.5 * le_, zc)), mirrored=True)
    elif style == "light":
        n_engines = 1
        spinner = [(0.0, 0.0), (0.35 * R, 0.05 * R), (0.6 * R, 0.35 * R), (0.62 * R, 0.6 * R), (0.0, 0.6 * R)]
        asm.add("propeller", translate(_along_y(lathe(spinner, palette.WHITE, 16)), (0.0, yn - 0.45 * R, 0.0)))
        blade = rounded_box((0.16, 0.05, 1.8 * R + 0.8), 0.02, palette.DARK)
        asm.add("propeller", translate(rotate(blade, "y", rng.uniform(0, math.pi)), (0.0, yn - 0.2 * R, 0.0)))
        x = 0.35 * span / 2
        wing_point = (x, y_root + 0.3 * chord, wing_z + x * math.tan(dihedral))
        asm.add("strut", cylinder_between((0.8 * R, y_root + 0.3 * chord, -0.4 * R), wing_point, 0.04, body, 6),
                mirrored=True)
        rw = 0.2
        for x, y in ((0.0, yn + 0.8), (1.1 * R, y_root + chord * 0.9)):
            mirrored = x > 0
            asm.add("gear", cylinder_between((x * 0.5, y, -0.6 * R), (x, y, -R - 0.35), 0.035, palette.GREY, 6),
                    mirrored=mirrored)
            asm.add("gear_wheel", translate(rotate(cylinder(rw, 0.1, palette.TYRE, 16), "y", math.pi / 2),
                                            (x, y, -R - 0.35 - rw * 0.5)), mirrored=mirrored)
    else:
        n_engines = 1
        asm.add("nozzle", translate(_along_y(cylinder(0.7 * R, 0.1 * L, palette.DARK, 20)),
                                    (0.0, L / 2 - 0.03 * L, 0.1 * R)))
        asm.add("intake", translate(box((0.5 * R, 0.3 * L, 1.1 * R), body), (1.05 * R, yn + 0.45 * L, -0.1 * R)),
                mirrored=True)
    return {"style": style, "length": L, "wingspan": span, "engines": n_engines,
            "sweep_deg": math.degrees(sweep), "twin_fin": twin, "t_tail": t_tail}


BOAT_STYLES = ("motorboat", "sailboat", "fishing", "rowboat")


def _hull_sections(L: float, B: float, D: float, sheer: float, keel_rise: float, stations: int = 12,
                   side_points: int = 7) -> np.ndarray:
    """Closed hull sections (stations, K, 3) from the bow (y = −L/2, a knife edge) to a flat
    transom (y = +L/2): starboard side deck edge to keel, the mirrored port side, then the deck."""
    t = np.linspace(0.0, 1.0, stations) ** 1.4
    out = []
    for ti in t:
        y = -L / 2 + ti * L
        b = B / 2 * math.sin(math.pi / 2 * min(1.0, ti / 0.55)) ** 0.85 * (1 - 0.12 * ti**2)
        z_deck = D + sheer * (1 - ti) ** 2
        z_keel = keel_rise * max(0.0, (0.35 - ti) / 0.35) ** 2
        u = np.linspace(0.0, 1.0, side_points)
        xs = b * np.cos(u * math.pi / 2) ** 0.55
        zs = z_deck - (z_deck - z_keel) * np.sin(u * math.pi / 2) ** 1.4  # exactly z_deck at the edge
        starboard = np.stack([xs, zs], 1)  # deck edge ... keel (x = 0)
        port = starboard[:-1][::-1] * [-1.0, 1.0]  # back up the other side
        camber = 0.03 * B * (b / (B / 2))
        deck_x = np.array([-0.5, 0.0, 0.5]) * b
        deck = np.stack([deck_x, z_deck + camber * (1 - (deck_x / max(b, 1e-9)) ** 2 * 0.8)], 1) if b > 0 \
            else np.stack([deck_x, np.full(3, z_deck)], 1)
        loop = np.concatenate([starboard, port, deck], 0)
        out.append(np.stack([loop[:, 0], np.full(len(loop), y), loop[:, 1]], 1))
    return np.stack(out)


def build_boat(rng: Rng, asm: Assembly) -> dict:
    """Motorboat (cabin and windscreen), sailboat (mast, boom, mainsail, jib), fishing boat
    (wheelhouse, mast) or rowboat (thwarts and oars) on a lofted hull with a knife-edge bow at −y
    and a transom at +y; the hull below the waterline is painted."""
    style = rng.cycle(BOAT_STYLES)
    L = {"motorboat": rng.uniform(6.0, 10.0), "sailboat": rng.uniform(8.0, 12.0), "fishing": rng.uniform(10.0, 16.0),
         "rowboat": rng.uniform(3.0, 4.5)}[style]
    B = L * (rng.uniform(0.30, 0.36) if style != "rowboat" else rng.uniform(0.34, 0.40))
    D = B * rng.uniform(0.40, 0.52)
    sheer = D * rng.uniform(0.15, 0.35)
    hull_color = rng.jitter(rng.choice(palette.HULL), 0.03)
    bottom = rng.choice(palette.ANTIFOULING)
    waterline = D * rng.uniform(0.35, 0.45)
    hull = loft(_hull_sections(L, B, D, sheer, D * 0.45), hull_color, cap_start=False)
    c_hull, c_bottom = np.asarray(hull_color), np.asarray(bottom)
    deck_color = np.asarray(rng.choice(palette.WOOD) if style != "fishing" else palette.GREY)

    def paint(v):
        w = np.clip((waterline - v[:, 2]) / (0.08 * D) + 0.5, 0.0, 1.0)[:, None]
        c = w * c_bottom + (1 - w) * c_hull
        return c

    asm.add("hull", recolor(hull, paint))
    # a deck a little inside the sheer line, so the hull side stays hull-coloured
    deck_sections = _hull_sections(L * 0.97, B * 0.93, D, sheer, D * 0.45)
    deck_sections[..., 2] += 0.02 * D
    asm.add("deck", loft(deck_sections, tuple(float(x) for x in deck_color), cap_start=False))
    deck_z = D + 0.03 * B
    mast_h = 0.0
    if style == "motorboat":
        cl = L * rng.uniform(0.28, 0.38)
        cy = -L / 2 + L * rng.uniform(0.40, 0.48)
        ch = B * rng.uniform(0.28, 0.38)
        cabin_color = palette.WHITE if hull_color[0] < 0.9 else rng.choice(palette.LIVERY)
        prof = [(cy - cl / 2, deck_z), (cy + cl / 2, deck_z), (cy + cl / 2, deck_z + ch), (cy - cl / 6, deck_z + ch)]
        asm.add("cabin", side_extrusion(prof, B * 0.62, cabin_color))
        run = cl / 3
        slope = math.atan2(ch, run)
        ws = rounded_box((B * 0.6, 0.04 * B, math.hypot(ch, run) * 0.8), 0.01 * B, palette.DARK_GLASS)
        asm.add("windscreen", translate(rotate(ws, "x", -(math.pi / 2 - slope)),
                                        (0.0, cy - cl / 2 + run / 2 - 0.01, deck_z + ch / 2 + 0.01)))
        asm.add("window", translate(box((B * 0.62 + 0.02, cl * 0.35, ch * 0.3), palette.DARK_GLASS),
                                    (0.0, cy + cl * 0.12, deck_z + ch * 0.6)))
        asm.add("rail", cylinder_between((0.0, -L / 2 + 0.1 * L, deck_z + 0.35), (0.0, cy - cl / 2, deck_z + 0.35),
                                         0.03, palette.CHROME, 6))
    elif style == "sailboat":
        mast_h = L * rng.uniform(1.2, 1.45)
        y_mast = -L / 2 + L * rng.uniform(0.33, 0.40)
        asm.add("mast", cylinder_between((0.0, y_mast, deck_z), (0.0, y_mast, deck_z + mast_h), 0.08 + 0.006 * L,
                                         palette.CHROME, 8))
        boom_len = L * rng.uniform(0.40, 0.50)
        z_boom = deck_z + B * 0.45
        asm.add("boom", cylinder_between((0.0, y_mast, z_boom), (0.0, y_mast + boom_len, z_boom), 0.06 + 0.004 * L,
                                         palette.CHROME, 8))
        sail = rng.choice(palette.SAIL)
        main = [(y_mast + 0.05, z_boom + 0.1), (y_mast + boom_len, z_boom + 0.1),
                (y_mast + 0.05, deck_z + mast_h * 0.95)]
        asm.add("sail", side_extrusion(main, 0.04, sail))
        y_bow = -L / 2 + 0.04 * L
        jib = [(y_bow, deck_z + sheer + 0.15), (y_mast - 0.1, deck_z + 0.3), (y_mast - 0.05, deck_z + mast_h * 0.8)]
        asm.add("sail", side_extrusion(jib, 0.04, sail))
        asm.add("cabin", translate(rounded_box((B * 0.55, L * 0.28, B * 0.2), 0.05 * B, palette.WHITE),
                                   (0.0, y_mast + L * 0.16, deck_z + 0.05 * B)))
    elif style == "fishing":
        wl = L * rng.uniform(0.18, 0.25)
        wy = -L / 2 + L * rng.uniform(0.35, 0.5)
        wh = B * rng.uniform(0.55, 0.7)
        wh_color = palette.WHITE if rng.chance(0.6) else rng.choice(palette.LIVERY)
        asm.add("wheelhouse", translate(box((B * 0.6, wl, wh), wh_color), (0.0, wy, deck_z + wh / 2)))
        asm.add("window", translate(box((B * 0.55, wl + 0.04, wh * 0.25), palette.DARK_GLASS),
                                    (0.0, wy, deck_z + wh * 0.72)))
        asm.add("roof", translate(box((B * 0.66, wl * 1.1, 0.06 * wh), palette.GREY), (0.0, wy, deck_z + wh)))
        mast_h = wh * 2.2
        ym = wy + wl * 0.8
        asm.add("mast", cylinder_between((0.0, ym, deck_z), (0.0, ym, deck_z + mast_h), 0.1, palette.GREY, 8))
        asm.add("mast", cylinder_between((-B * 0.35, ym, deck_z + mast_h * 0.7), (B * 0.35, ym, deck_z + mast_h * 0.7),
                                         0.06, palette.GREY, 6))
        asm.add("gear", translate(rotate(cylinder(0.35 * B * 0.4, B * 0.5, palette.DARK, 16), "y", math.pi / 2),
                                  (0.0, L / 2 - 0.18 * L, deck_z + 0.25 * B)))
    else:
        seat = rng.choice(palette.WOOD)
        for f in (0.35, 0.62):
            y = -L / 2 + f * L
            asm.add("thwart", translate(box((B * 0.8, 0.22, 0.05), seat), (0.0, y, deck_z + 0.04)))
        oar_y = -L / 2 + 0.5 * L
        s = 1.0
        asm.add("oar", cylinder_between((s * B * 0.2, oar_y, deck_z + 0.1),
                                        (s * B * 0.9, oar_y + 0.3 * L, deck_z - 0.2),
                                        0.025, seat, 6), mirrored=True)
    return {"style": style, "length": L, "beam": B, "mast_height": mast_h}
