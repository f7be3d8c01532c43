"""Household objects: bottle, mug, monitor (built in metres, front towards −y, resting on z = 0)."""

from __future__ import annotations

import math

import numpy as np

from . import palette
from .assembly import Assembly, Rng
from .primitives import box, cylinder, cylinder_between, lathe, loft, recolor, rounded_box, translate, tube

__all__ = ["build_bottle", "build_mug", "build_monitor"]

BOTTLE_STYLES = ("wine", "beer", "water", "flask")


def build_bottle(rng: Rng, asm: Assembly) -> dict:
    """Wine (round shoulders, long neck, foil capsule), beer (sloping shoulders), water (wide
    plastic body with grip rings, short neck, screw cap) or flask (squat body, short neck): a
    lathed body, a cap and a label band."""
    style = rng.cycle(BOTTLE_STYLES)
    H = {"wine": rng.uniform(0.29, 0.33), "beer": rng.uniform(0.22, 0.26), "water": rng.uniform(0.20, 0.30),
         "flask": rng.uniform(0.14, 0.20)}[style]
    Rb = {"wine": rng.uniform(0.036, 0.040), "beer": rng.uniform(0.029, 0.033), "water": rng.uniform(0.032, 0.045),
          "flask": rng.uniform(0.04, 0.055)}[style]
    Rn = {"wine": 0.0145, "beer": 0.013, "water": rng.uniform(0.013, 0.016), "flask": rng.uniform(0.012, 0.016)}[style]
    body_frac = {"wine": rng.uniform(0.55, 0.62), "beer": rng.uniform(0.45, 0.55), "water": rng.uniform(0.68, 0.78),
                 "flask": rng.uniform(0.55, 0.7)}[style]
    shoulder_frac = {"wine": rng.uniform(0.10, 0.15), "beer": rng.uniform(0.18, 0.25), "water": rng.uniform(0.10, 0.14),
                     "flask": rng.uniform(0.12, 0.18)}[style]
    shoulder_power = {"wine": 0.6, "beer": 1.6, "water": 0.8, "flask": 0.5}[style]
    glass = rng.jitter(palette.GLASS_BOTTLE[3] if style == "water" else rng.choice(palette.GLASS_BOTTLE[:3]), 0.03)
    hb, hs = H * body_frac, H * shoulder_frac
    lip = 0.008
    prof = [(0.0, 0.0), (Rb * 0.9, 0.0), (Rb, 0.012)]
    if style == "water":  # grip rings
        for zf in (0.45, 0.6):
            z = hb * zf
            prof += [(Rb, z - 0.008), (Rb * 0.93, z), (Rb, z + 0.008)]
    prof.append((Rb, hb))
    for s in np.linspace(0.0, 1.0, 7)[1:-1]:
        prof.append((Rn + (Rb - Rn) * math.cos(s * math.pi / 2) ** shoulder_power, hb + hs * s))
    prof += [(Rn, hb + hs), (Rn, H - lip), (Rn * 1.18, H - lip * 0.7), (Rn * 1.18, H - lip * 0.2), (Rn * 1.05, H),
             (0.0, H)]
    asm.add("body", lathe(prof, glass, 28))
    label_h = hb * rng.uniform(0.35, 0.6)
    label_color = rng.jitter(rng.choice(palette.LABEL), 0.03)
    has_label = rng.chance(0.85)
    if has_label:
        asm.add("label", translate(cylinder(Rb * 1.01, label_h, label_color, 28), (0.0, 0.0, hb * 0.52)))
    cap = rng.choice(palette.CAP)
    if style == "wine":
        foil = 0.06
        asm.add("cap", translate(cylinder(Rn * 1.25, foil, cap, 20), (0.0, 0.0, H - foil / 2 + 0.002)))
    else:
        ch = 0.02 if style in ("water", "flask") else 0.01
        asm.add("cap", translate(cylinder(Rn * (1.35 if ch > 0.01 else 1.3), ch, cap, 20),
                                 (0.0, 0.0, H - ch / 2 + 0.003)))
    return {"style": style, "height": H, "body_radius": Rb, "neck_radius": Rn, "label": has_label}


MUG_STYLES = ("mug", "cup", "tall_mug", "conical")


def build_mug(rng: Rng, asm: Assembly) -> dict:
    """Mug, tall mug, cup on a saucer or conical mug: a lathed body with a real cavity (a lighter
    glaze inside) and a handle on the +x side (ring, D-shaped or ear-shaped) of varying size."""
    style = rng.cycle(MUG_STYLES)
    R = {"mug": rng.uniform(0.040, 0.048), "tall_mug": rng.uniform(0.038, 0.045), "cup": rng.uniform(0.038, 0.048),
         "conical": rng.uniform(0.034, 0.040)}[style]
    H = {"mug": rng.uniform(0.085, 0.10), "tall_mug": rng.uniform(0.11, 0.14), "cup": rng.uniform(0.055, 0.07),
         "conical": rng.uniform(0.09, 0.11)}[style]
    flare = {"mug": rng.uniform(1.0, 1.06), "tall_mug": rng.uniform(0.95, 1.02), "cup": rng.uniform(1.2, 1.35),
             "conical": rng.uniform(1.3, 1.45)}[style]
    wall, floor = rng.uniform(0.004, 0.006), rng.uniform(0.006, 0.01)
    base = 0.0 if style != "cup" else 0.008
    outer = rng.jitter(rng.choice(palette.CERAMIC), 0.03)
    inner = palette.WHITE if rng.chance(0.6) else outer
    Rt = R * flare
    Rb = R if style != "cup" else R * 0.75
    prof = [(0.0, 0.0), (Rb - 0.004, 0.0), (Rb, 0.004), (Rt, H), (Rt - wall * 0.4, H + 0.002), (Rt - wall, H),
            (Rb - wall + (Rt - Rb) * floor / H, floor), (0.0, floor)]
    body = lathe(prof, outer, 36)
    r_in_top = Rt - wall

    def glaze(v):
        r = np.hypot(v[:, 0], v[:, 1])
        r_inner_wall = (Rb - wall) + (r_in_top - (Rb - wall)) * np.clip(v[:, 2] / H, 0, 1)
        inside = (v[:, 2] >= floor - 1e-9) & (r <= r_inner_wall + 1e-6) & (v[:, 2] < H + 1e-4)
        c = np.tile(np.asarray(outer), (len(v), 1))
        c[inside] = inner
        return c

    asm.add("body", translate(recolor(body, glaze), (0.0, 0.0, base)))
    # handle: an arc of a tube whose two ends sink into the wall on the +x side
    shape = rng.choice(("ring", "d", "ear"))
    thick = rng.uniform(0.004, 0.0075)
    span = H * ({"ring": rng.uniform(0.55, 0.7), "d": rng.uniform(0.65, 0.8), "ear": rng.uniform(0.4, 0.55)}[shape])
    reach = span * ({"ring": 0.5, "d": rng.uniform(0.45, 0.6), "ear": rng.uniform(0.5, 0.65)}[shape])
    zc = base + H * rng.uniform(0.45, 0.58) if style != "cup" else base + H * 0.55
    n = 20
    phi = np.linspace(-math.pi / 2, math.pi / 2, n)
    e = 2.0 / (4.0 if shape == "d" else 2.0)
    xs = reach * np.abs(np.cos(phi)) ** e
    zs = (span / 2) * np.sign(np.sin(phi)) * np.abs(np.sin(phi)) ** e
    wall_r = Rb + (Rt - Rb) * np.clip((zc + zs - base) / H, 0, 1)
    path = np.stack([wall_r - thick * 0.6 + xs, np.zeros(n), zc + zs], 1)
    asm.add("handle", tube(path, thick, outer, 10))
    if style == "cup":
        Rs = Rt * rng.uniform(1.6, 1.9)
        saucer = [(0.0, 0.0), (Rs * 0.45, 0.0), (Rs, 0.011), (Rs * 0.97, 0.015), (Rs * 0.5, base), (0.0, base)]
        asm.add("saucer", lathe(saucer, inner if rng.chance(0.5) else outer, 40))
    return {"style": style, "height": H, "radius": R, "handle": shape, "handle_span": span, "handle_reach": reach}


MONITOR_STYLES = ("flat", "tv", "crt", "flat", "tv")


def build_monitor(rng: Rng, asm: Assembly) -> dict:
    """Flat-panel computer monitor (neck and base), television (feet or pedestal) or CRT (deep
    tapered housing): the dark screen faces −y."""
    style = rng.cycle(MONITOR_STYLES)
    housing = rng.jitter(rng.choice(palette.CRT_HOUSING if style == "crt" else palette.HOUSING), 0.02)
    aspect = rng.choice((16 / 9, 16 / 10, 4 / 3)) if style == "flat" else 16 / 9 if style == "tv" else 4 / 3
    sw = {"flat": rng.uniform(0.45, 0.70), "tv": rng.uniform(0.9, 1.5), "crt": rng.uniform(0.28, 0.38)}[style]
    sh = sw / aspect
    bezel = {"flat": rng.uniform(0.008, 0.025), "tv": rng.uniform(0.008, 0.02), "crt": rng.uniform(0.03, 0.05)}[style]
    W, Hs = sw + 2 * bezel, sh + 2 * bezel
    lift = {"flat": rng.uniform(0.08, 0.16), "tv": rng.uniform(0.05, 0.10), "crt": 0.02}[style]
    zc = lift + Hs / 2
    if style == "crt":
        depth = sw * rng.uniform(0.9, 1.1)
        front = 0.08
        asm.add("housing", translate(rounded_box((W, front, Hs), 0.015, housing), (0.0, 0.0, zc)))
        rect = np.array([[1, 0, 1], [-1, 0, 1], [-1, 0, -1], [1, 0, -1]], dtype=np.float64)
        back = [rect * [W * 0.48, 0, Hs * 0.48] + [0, front / 2, zc],
                rect * [W * 0.3, 0, Hs * 0.3] + [0, depth, zc + 0.02]]
        asm.add("housing", loft(np.stack(back), housing))
        asm.add("base", translate(rounded_box((W * 0.6, depth * 0.6, lift + 0.02), 0.01, housing),
                                  (0.0, depth * 0.35, (lift + 0.02) / 2)))
        y_front = -front / 2
    else:
        depth = {"flat": rng.uniform(0.015, 0.03), "tv": rng.uniform(0.025, 0.05)}[style]
        asm.add("housing", translate(rounded_box((W, depth, Hs), min(0.006, depth / 2.5), housing), (0.0, 0.0, zc)))
        asm.add("housing", translate(rounded_box((W * 0.6, depth * 1.5, Hs * 0.6), min(0.01, depth * 0.6), housing),
                                     (0.0, depth * 0.6, zc)))
        y_front = -depth / 2
        if style == "flat":
            base_kind = rng.choice(("rect", "disc", "v"))
            neck_y = depth * 1.4
            asm.add("stand", translate(box((0.05, 0.02, zc), housing), (0.0, neck_y, zc / 2 + 0.01)))
            if base_kind == "rect":
                asm.add("base", translate(rounded_box((W * 0.4, 0.2, 0.015), 0.007, housing),
                                          (0.0, neck_y - 0.03, 0.0075)))
            elif base_kind == "disc":
                asm.add("base", translate(cylinder(0.11, 0.015, housing, 32), (0.0, neck_y - 0.02, 0.0075)))
            else:
                for s in (1.0, -1.0):
                    asm.add("base", cylinder_between((0.0, neck_y, 0.01), (s * 0.16, neck_y - 0.14, 0.01), 0.012,
                                                     housing, 8))
        else:
            if rng.chance(0.5):  # two feet near the ends
                x = W * 0.38
                asm.add("stand", cylinder_between((x, 0.0, lift + 0.03), (x + 0.03, -0.12, 0.0), 0.012, housing, 8),
                        mirrored=True)
                asm.add("stand", cylinder_between((x, 0.0, lift + 0.03), (x + 0.03, 0.12, 0.0), 0.012, housing, 8),
                        mirrored=True)
            else:
                asm.add("stand", translate(box((0.08, 0.03, lift + 0.05), housing), (0.0, depth, (lift + 0.05) / 2)))
                asm.add("base", translate(rounded_box((W * 0.35, 0.25, 0.02), 0.008, housing), (0.0, 0.0, 0.01)))
    # the screen: a thin dark panel standing 1 mm proud of the front face
    glow = rng.chance(0.25)
    screen_color = rng.jitter((0.12, 0.22, 0.38), 0.05) if glow else palette.SCREEN
    asm.add("screen", translate(box((sw, 0.004, sh), screen_color), (0.0, y_front + 0.001, zc)))
    return {"style": style, "screen_width": sw, "screen_height": sh, "aspect": aspect}
