"""Furniture: chair, table, sofa (built in metres, the seat front towards −y, floor at z = 0)."""

from __future__ import annotations

import math

import numpy as np

from . import palette
from .assembly import Assembly, Rng
from .primitives import (
    box,
    cylinder,
    cylinder_between,
    frustum,
    lathe,
    rotate,
    rounded_box,
    scale,
    superellipsoid,
    translate,
    tube,
)

__all__ = ["build_chair", "build_table", "build_sofa"]

# the seed cycles through these (repeats make the common kinds more frequent)
CHAIR_BASES = ("four_legs", "pedestal", "four_legs", "three_legs", "four_legs", "cantilever")
CHAIR_BACKS = ("panel", "slats", "ladder")


def _leg(top, bottom, thickness: float, color, round_: bool, taper: float = 1.0):
    """A leg from `top` down to `bottom` (points): round (a frustum) or square (a box, vertical only)."""
    top, bottom = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
    if round_ or np.linalg.norm((top - bottom)[:2]) > 1e-9:
        return cylinder_between(bottom, top, thickness / 2 * taper, color, 10, r1=thickness / 2)
    h = top[2] - bottom[2]
    return translate(box((thickness, thickness, h), color), (top[0], top[1], bottom[2] + h / 2))


def build_chair(rng: Rng, asm: Assembly) -> dict:
    """Four- or three-legged, office (pedestal with a five-star base) or cantilever tube chair; a
    panel, slatted or ladder back at +y tilted back; optional armrests."""
    base = rng.cycle(CHAIR_BASES)
    back = "panel" if base == "pedestal" else rng.choice(CHAIR_BACKS, weights=[2, 2, 1])
    sw, sd = rng.uniform(0.40, 0.52), rng.uniform(0.40, 0.48)
    sh = rng.uniform(0.45, 0.52) if base == "pedestal" else rng.uniform(0.43, 0.48)
    st = rng.uniform(0.07, 0.10) if base == "pedestal" else rng.uniform(0.025, 0.06)
    back_h = rng.uniform(0.45, 0.60) if base == "pedestal" else rng.uniform(0.35, 0.50)
    tilt = math.radians(rng.uniform(4, 14))
    material = rng.choice(("wood", "painted", "metal"), weights=[3, 2, 1]) if base != "pedestal" else "metal"
    frame = rng.jitter(rng.choice({"wood": palette.WOOD, "painted": palette.PAINTED,
                                   "metal": palette.METAL}[material]), 0.03)
    cushion = rng.jitter(rng.choice(palette.FABRIC), 0.03) if base == "pedestal" or rng.chance(0.4) else frame
    leg_t = rng.uniform(0.030, 0.050)
    round_legs = material == "metal" or rng.chance(0.4)
    armrests = rng.chance(0.6 if base == "pedestal" else 0.25)

    asm.add("seat", translate(rounded_box((sw, sd, st), min(0.012, st / 2.5) if cushion is frame else st / 3, cushion),
                              (0.0, 0.0, sh - st / 2)))
    inset = leg_t / 2 + 0.01
    z_under = sh - st
    if base in ("four_legs", "three_legs"):
        splay = rng.uniform(0.0, 0.04)
        fx, fy = sw / 2 - inset, -(sd / 2 - inset)
        corners = [(fx, fy), (fx, -fy)] if base == "four_legs" else [(fx, fy)]
        for x, y in corners:
            asm.add("leg", _leg((x, y, z_under), (x + splay, y + math.copysign(splay, y), 0.0), leg_t, frame,
                                round_legs, 0.85 if round_legs else 1.0), mirrored=True)
        if base == "three_legs":
            asm.add("leg", _leg((0.0, sd / 2 - inset, z_under), (0.0, sd / 2 - inset + splay * 1.4, 0.0), leg_t, frame,
                                round_legs, 0.85 if round_legs else 1.0))
        if base == "four_legs" and rng.chance(0.5):  # stretchers between the legs
            zs = rng.uniform(0.12, 0.2)
            asm.add("stretcher", cylinder_between((fx + splay * 0.6, fy, zs), (fx + splay * 0.6, -fy, zs), leg_t * 0.3,
                                                  frame, 8), mirrored=True)
    elif base == "pedestal":
        column_top = z_under
        asm.add("column", translate(cylinder(0.025, column_top - 0.1, palette.CHROME, 16),
                                    (0.0, 0.0, 0.1 + (column_top - 0.1) / 2)))
        asm.add("column", translate(cylinder(0.04, 0.18, palette.BLACK_PLASTIC, 16), (0.0, 0.0, 0.19)))
        reach = rng.uniform(0.28, 0.33)
        for k in range(5):
            a = math.pi / 2 + 2 * math.pi * k / 5
            end = np.array([reach * math.cos(a), reach * math.sin(a)])
            asm.add("leg", cylinder_between((0.0, 0.0, 0.11), (end[0], end[1], 0.075), 0.02, palette.BLACK_PLASTIC, 8))
            asm.add("caster", translate(rotate(cylinder(0.025, 0.02, palette.DARK, 12), "y", math.pi / 2),
                                        (end[0], end[1], 0.03)))
    else:  # cantilever: one bent tube per side, a floor runner and the front legs
        r = leg_t * 0.4
        x = sw / 2 - 0.02
        path = [(x, sd / 2 - 0.02, z_under), (x, -sd / 2 + 0.04, z_under - 0.01),
                (x, -sd / 2 + 0.02, z_under - 0.06),
                (x, -sd / 2 + 0.06, r), (x, -sd / 2 + 0.12, r), (x, sd / 2 + 0.02, r)]
        asm.add("leg", tube(path, r, palette.CHROME, 10), mirrored=True)
        frame = palette.CHROME if back != "panel" else frame

    # back, tilted back about the seat's rear edge
    bt = rng.uniform(0.02, 0.04) if base != "pedestal" else 0.06
    pivot = np.array([0.0, sd / 2 - bt / 2, sh])
    pieces = []
    post = leg_t * 0.9
    if base != "pedestal":
        for x in (sw / 2 - post / 2, -(sw / 2 - post / 2)):
            pieces.append(("back_post", box((post, post, back_h), frame), (x, 0.0, back_h / 2)))
    if back == "panel":
        panel_w = sw * rng.uniform(0.85, 1.0) if base == "pedestal" else sw
        pieces.append(("back", rounded_box((panel_w, bt, back_h * (0.9 if base != "pedestal" else 1.0)),
                                           min(0.05, bt / 2.2) if base != "pedestal" else 0.025,
                                           cushion if base == "pedestal" else frame),
                       (0.0, 0.0, back_h * (0.55 if base != "pedestal" else 0.5) + 0.02)))
        if base == "pedestal":
            pieces.append(("back_support", box((0.05, 0.02, 0.25), palette.BLACK_PLASTIC), (0.0, bt / 2 + 0.01, -0.05)))
    else:
        pieces.append(("back", rounded_box((sw, bt, 0.07), 0.01, frame), (0.0, 0.0, back_h - 0.035)))
        if back == "slats":
            n = rng.integer(3, 6)
            gap = (sw - 2 * post) / n
            for k in range(n):
                x = -sw / 2 + post + gap * (k + 0.5)
                pieces.append(("back", box((gap * 0.45, bt * 0.6, back_h - 0.1), frame),
                               (x, 0.0, (back_h - 0.07) / 2 + 0.01)))
        else:
            for f in (0.35, 0.62):
                pieces.append(("back", box((sw - post, bt * 0.8, 0.05), frame), (0.0, 0.0, back_h * f)))
    for name, mesh, offset in pieces:
        m = rotate(translate(mesh, offset), "x", -tilt)
        asm.add(name, translate(m, pivot))
    if armrests:
        ah = rng.uniform(0.18, 0.25)
        ax = sw / 2 + 0.02
        asm.add("armrest", translate(rounded_box((0.05, sd * 0.75, 0.03), 0.012,
                                                 cushion if base == "pedestal" else frame),
                                     (ax, -0.02, sh + ah)), mirrored=True)
        asm.add("armrest", translate(box((0.025, 0.025, ah), frame if base != "pedestal" else palette.BLACK_PLASTIC),
                                     (ax, sd * 0.05, sh - 0.02 + ah / 2)), mirrored=True)
    return {"style": base, "back": back, "seat_height": sh, "seat_width": sw, "seat_depth": sd, "back_height": back_h,
            "tilt_deg": math.degrees(tilt), "armrests": armrests}


TABLE_TOPS = ("rectangular", "round", "rectangular", "square", "rectangular", "oval")


def build_table(rng: Rng, asm: Assembly) -> dict:
    """Rectangular, square, round or oval top (long side along x) on four legs (with or without an
    apron), a pedestal (disc, cross or tulip foot) or trestles."""
    top = rng.cycle(TABLE_TOPS)
    if top == "rectangular":
        L, W = rng.uniform(1.2, 2.0), rng.uniform(0.75, 1.0)
    elif top == "square":
        L = W = rng.uniform(0.8, 1.0)
    elif top == "round":
        L = W = rng.uniform(0.9, 1.3)
    else:
        L, W = rng.uniform(1.4, 2.0), rng.uniform(0.9, 1.1)
    bases = {"rectangular": ["four_legs", "trestle"], "square": ["four_legs", "pedestal"],
             "round": ["four_legs", "pedestal"], "oval": ["four_legs", "pedestal", "trestle"]}[top]
    base = rng.choice(bases, weights=[3, 1, 1][: len(bases)])
    H, t = rng.uniform(0.72, 0.77), rng.uniform(0.025, 0.05)
    wood = rng.jitter(rng.choice(palette.WOOD + palette.PAINTED[:2]), 0.03)
    legs_color = wood if rng.chance(0.7) else rng.choice(palette.METAL)
    if top in ("round", "oval"):
        slab = scale(cylinder(0.5, t, wood, 48), (L, W, 1.0))
    else:
        slab = rounded_box((L, W, t), min(0.01, t / 3), wood, 2)
    asm.add("top", translate(slab, (0.0, 0.0, H - t / 2)))
    z_under = H - t
    leg_t = rng.uniform(0.04, 0.08)
    if base == "four_legs":
        inset = rng.uniform(0.04, 0.10) + leg_t / 2
        if top in ("round", "oval"):
            lx, ly = (L / 2) * 0.68 - leg_t / 2, (W / 2) * 0.68 - leg_t / 2
        else:
            lx, ly = L / 2 - inset, W / 2 - inset
        round_legs = legs_color in palette.METAL or rng.chance(0.4)
        taper = rng.uniform(0.6, 1.0)
        for sy in (-1.0, 1.0):
            asm.add("leg", _leg((lx, sy * ly, z_under), (lx, sy * ly, 0.0), leg_t, legs_color, round_legs,
                                taper if round_legs else 1.0), mirrored=True)
        if top in ("rectangular", "square") and rng.chance(0.7):
            ah = rng.uniform(0.07, 0.12)
            asm.add("apron", translate(box((2 * lx, 0.02, ah), wood), (0.0, ly, z_under - ah / 2)), mirrored=False)
            asm.add("apron", translate(box((2 * lx, 0.02, ah), wood), (0.0, -ly, z_under - ah / 2)))
            asm.add("apron", translate(box((0.02, 2 * ly, ah), wood), (lx, 0.0, z_under - ah / 2)), mirrored=True)
    elif base == "pedestal":
        foot = rng.choice(("disc", "cross", "tulip"))
        if foot == "tulip":
            prof = [(0.0, 0.0), (0.28, 0.0), (0.26, 0.03), (0.09, 0.12), (0.05, 0.3), (0.05, z_under - 0.05),
                    (0.12, z_under), (0.0, z_under)]
            asm.add("pedestal", lathe(prof, legs_color, 32))
        else:
            column = cylinder(rng.uniform(0.04, 0.07), z_under, legs_color, 20)
            asm.add("pedestal", translate(column, (0.0, 0.0, z_under / 2)))
            if foot == "disc":
                asm.add("foot", translate(cylinder(min(L, W) * rng.uniform(0.25, 0.32), 0.03, legs_color, 32),
                                          (0.0, 0.0, 0.015)))
            else:
                reach = min(L, W) * 0.35
                for a in (math.pi / 4, 3 * math.pi / 4):
                    asm.add("foot", rotate(translate(box((2 * reach, 0.07, 0.05), legs_color), (0.0, 0.0, 0.025)),
                                           "z", a))
    else:  # trestle: an end frame near each end, joined by a stretcher
        ex = L / 2 - rng.uniform(0.15, 0.25)
        x = ex
        asm.add("leg", translate(box((0.06, W * 0.35, z_under - 0.06), legs_color),
                                 (x, 0.0, (z_under - 0.06) / 2 + 0.05)),
                mirrored=True)
        asm.add("foot", translate(rounded_box((0.08, W * 0.8, 0.06), 0.02, legs_color), (x, 0.0, 0.03)),
                mirrored=True)
        asm.add("cleat", translate(box((0.07, W * 0.75, 0.04), legs_color), (x, 0.0, z_under - 0.02)),
                mirrored=True)
        asm.add("stretcher", translate(box((2 * ex, 0.05, 0.08), legs_color), (0.0, 0.0, rng.uniform(0.2, 0.3))))
    return {"style": top, "base": base, "length": L, "width": W, "height": H}


SOFA_SEATS = (3, 2, 1, 3, 2)
SOFA_ARMS = ("none", "box", "rolled", "slim")


def build_sofa(rng: Rng, asm: Assembly) -> dict:
    """Two- or three-seater: a base, seat and back cushions (the back at +y), box, rolled, slim or
    no arms, short legs or a plinth, and sometimes a chaise extending forward on one side."""
    seats = rng.cycle(SOFA_SEATS)
    arms = rng.choice(SOFA_ARMS, weights=[1, 3, 2, 2])
    cushion_w = rng.uniform(0.55, 0.75)
    arm_w = {"none": 0.0, "box": rng.uniform(0.15, 0.25), "rolled": rng.uniform(0.18, 0.26),
             "slim": rng.uniform(0.06, 0.1)}[arms]
    inner = seats * cushion_w
    W = inner + 2 * arm_w
    D = rng.uniform(0.82, 0.98)
    leg_h = rng.uniform(0.08, 0.16) if rng.chance(0.7) else 0.0
    seat_h = rng.uniform(0.40, 0.46)
    back_h = rng.uniform(0.72, 0.92)
    arm_h = rng.uniform(0.55, 0.68) if arms != "slim" else rng.uniform(0.5, 0.6)
    fabric = rng.jitter(rng.choice(palette.FABRIC), 0.03)
    cushion_color = fabric if rng.chance(0.7) else rng.jitter(fabric, 0.08)
    back_t = rng.uniform(0.14, 0.22)
    chaise = seats >= 2 and rng.chance(0.2)
    cl = rng.uniform(0.5, 0.7) if chaise else 0.0
    base_top = seat_h - rng.uniform(0.12, 0.16)
    base_bottom = leg_h if leg_h else 0.0
    yf = -D / 2
    # base (the frame under the seat cushions) and the back frame
    asm.add("base", translate(rounded_box((W, D, base_top - base_bottom), 0.03, fabric),
                              (0.0, 0.0, (base_top + base_bottom) / 2)))
    asm.add("back", translate(rounded_box((W, back_t, back_h - base_bottom), 0.05, fabric),
                              (0.0, D / 2 - back_t / 2, (back_h + base_bottom) / 2)))
    # seat and back cushions
    cd = D - back_t - 0.02
    ct = seat_h - base_top
    for k in range(seats):
        x = -inner / 2 + cushion_w * (k + 0.5)
        asm.add("seat_cushion", translate(rounded_box((cushion_w - 0.01, cd, ct + 0.02), min(0.06, ct / 2),
                                                      cushion_color),
                                          (x, yf + cd / 2, base_top + ct / 2)))
        bc_h = back_h - seat_h - rng.uniform(0.02, 0.08)
        bc = rotate(rounded_box((cushion_w - 0.02, 0.16, bc_h), 0.06, cushion_color), "x", -math.radians(10))
        asm.add("back_cushion", translate(bc, (x, D / 2 - back_t - 0.06, seat_h + bc_h / 2 - 0.02)))
    if chaise:
        x = inner / 2 - cushion_w / 2
        asm.add("base", translate(rounded_box((cushion_w, cl, base_top - base_bottom), 0.03, fabric),
                                  (x, yf - cl / 2 + 0.02, (base_top + base_bottom) / 2)))
        asm.add("seat_cushion", translate(rounded_box((cushion_w - 0.01, cl, ct + 0.02), min(0.06, ct / 2),
                                                      cushion_color),
                                          (x, yf - cl / 2 + 0.02, base_top + ct / 2)))
    # arms
    if arms != "none":
        ax = inner / 2 + arm_w / 2
        if arms == "rolled":
            asm.add("arm", translate(rounded_box((arm_w * 0.8, D, arm_h - base_bottom - arm_w * 0.4), 0.03, fabric),
                                     (ax, 0.0, base_bottom + (arm_h - base_bottom - arm_w * 0.4) / 2)), mirrored=True)
            roll = rotate(cylinder(arm_w * 0.55, D + 0.02, fabric, 20), "x", math.pi / 2)
            asm.add("arm", translate(roll, (ax, 0.0, arm_h - arm_w * 0.55)), mirrored=True)
        else:
            asm.add("arm", translate(rounded_box((arm_w, D, arm_h - base_bottom), min(0.05, arm_w / 2.5), fabric),
                                     (ax, 0.0, (arm_h + base_bottom) / 2)), mirrored=True)
    # legs or a plinth
    wood = rng.choice(palette.WOOD + palette.METAL[1:])
    if leg_h:
        tapered = rng.chance(0.5)
        for x, y in ((W / 2 - 0.06, -D / 2 + 0.06), (W / 2 - 0.06, D / 2 - 0.06)):
            leg = frustum(0.018 if tapered else 0.025, 0.028, leg_h, wood, 12)
            asm.add("leg", translate(leg, (x, y, leg_h / 2)), mirrored=True)
        if chaise:
            asm.add("leg", translate(frustum(0.025, 0.025, leg_h, wood, 12),
                                     (inner / 2 - 0.06, yf - cl + 0.08, leg_h / 2)))
    pillows = rng.chance(0.35)
    if pillows:
        pc = rng.jitter(rng.choice(palette.FABRIC), 0.03)
        for x in (inner / 2 - 0.22, -(inner / 2 - 0.22)):
            pillow = rotate(superellipsoid((0.2, 0.07, 0.2), 0.5, 0.5, pc, 8, 16), "x", -0.35)
            asm.add("pillow", translate(pillow, (x, D / 2 - back_t - 0.2, seat_h + 0.19)))
    style = "armchair" if seats == 1 else f"{seats}-seater" + (" with chaise" if chaise else "")
    return {"style": style, "arms": arms, "pillows": pillows, "seats": seats, "width": W,
            "depth": D, "seat_height": seat_h, "back_height": back_h, "chaise": chaise}
