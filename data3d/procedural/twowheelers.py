"""Bicycles and motorbikes (built in metres, front wheel towards −y, wheels in the yz plane, z up)."""

from __future__ import annotations

import math

import numpy as np

from . import palette
from .assembly import Assembly, Rng
from .primitives import (
    box,
    cylinder,
    cylinder_between,
    rotate,
    rounded_box,
    superellipsoid,
    torus_segment,
    translate,
    tube,
    warp,
)

__all__ = ["build_bicycle", "build_motorbike"]


def _upright_torus(major: float, minor: float, color, segments: int = 36, tube_segments: int = 8, start: float = 0.0,
                   stop: float = 2 * math.pi):
    """A torus (or an arc of one) standing in the yz plane (axis along x); angle 0 at +y, π/2 at +z."""
    t = torus_segment(major, minor, start, stop, color, segments, tube_segments)
    # xy plane -> yz plane: x -> y, y -> z, z -> x (a rotation)
    return t.transform(np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0, 0, 0, 1.0]]))


def _axle_cylinder(radius: float, width: float, color, segments: int = 16):
    return rotate(cylinder(radius, width, color, segments), "y", math.pi / 2)


BICYCLE_STYLES = ("road", "mountain", "city")


def build_bicycle(rng: Rng, asm: Assembly) -> dict:
    """Road (drop bars, thin tyres), mountain (flat bar, fat tyres, sloping top tube) or city
    (step-through frame, swept-back bars, mudguards, sometimes a basket) bicycle with spoked wheels."""
    style = rng.cycle(BICYCLE_STYLES)
    R = rng.uniform(0.33, 0.36)
    rt = {"road": rng.uniform(0.012, 0.015), "mountain": rng.uniform(0.025, 0.03),
          "city": rng.uniform(0.018, 0.022)}[style]
    wb = rng.uniform(0.98, 1.08)
    frame = rng.jitter(rng.choice(palette.FRAME), 0.03)
    yf, yr = -wb / 2, wb / 2
    tube_r = {"road": 0.016, "mountain": 0.022, "city": 0.018}[style]
    # wheels: tyre, rim, hub and spokes
    n_spokes = 16 if style != "mountain" else 14
    for name_y in (yf, yr):
        c = np.array([0.0, name_y, R])
        asm.add("wheel", translate(_upright_torus(R - rt, rt, palette.TYRE, 40, 8), c))
        asm.add("rim", translate(_upright_torus(R - 2 * rt - 0.006, 0.007, palette.CHROME, 40, 6), c))
        asm.add("hub", translate(_axle_cylinder(0.02, 0.1, palette.GREY, 12), c))
        rr = R - 2 * rt - 0.008
        for k in range(n_spokes):
            a = 2 * math.pi * k / n_spokes
            side = 0.028 if k % 2 else -0.028
            rim_point = c + [0.0, rr * math.cos(a), rr * math.sin(a)]
            asm.add("spoke", cylinder_between(c + [side, 0.0, 0.0], rim_point, 0.0015, palette.CHROME, 4))
    # frame key points (y, z), from the usual geometry: head angle ~72°, seat angle ~73°
    head = math.radians(rng.uniform(17, 19))
    seat_a = math.radians(rng.uniform(16, 18))
    bb = np.array([0.0, yr - rng.uniform(0.41, 0.45), R - rng.uniform(0.06, 0.075)])
    st_len = rng.uniform(0.48, 0.56) if style != "mountain" else rng.uniform(0.40, 0.46)
    seat_cluster = bb + st_len * np.array([0.0, math.sin(seat_a), math.cos(seat_a)])
    fork_len = rng.uniform(0.37, 0.40) + (0.08 if style == "mountain" else 0.0)
    axis = np.array([0.0, math.sin(head), math.cos(head)])
    crown = np.array([0.0, yf, R]) + fork_len * axis + np.array([0.0, 0.03, 0.0])
    ht_len = rng.uniform(0.12, 0.18)
    ht_top = crown + ht_len * axis
    asm.add("frame", cylinder_between(crown, ht_top, tube_r * 1.3, frame, 12))
    asm.add("frame", cylinder_between(bb, seat_cluster + [0.0, 0.0, 0.03], tube_r, frame, 12))
    if style == "city":  # step-through: a low, curved main tube instead of top and down tubes
        mid = bb + np.array([0.0, -0.12, 0.06])
        asm.add("frame", tube([ht_top - 0.03 * axis, crown + 0.02 * axis + [0.0, 0.05, -0.05], mid, bb], tube_r * 1.2,
                              frame, 10))
    else:
        tt_end = ht_top - 0.02 * axis
        tt_start = seat_cluster - (np.array([0.0, math.sin(seat_a), math.cos(seat_a)]) * (0.08 if style == "mountain"
                                                                                          else 0.01))
        asm.add("frame", cylinder_between(tt_start, tt_end, tube_r * 0.9, frame, 12))
        asm.add("frame", cylinder_between(crown + 0.02 * axis, bb, tube_r * 1.2, frame, 12))
    axle_r = np.array([0.0, yr, R])
    asm.add("frame", cylinder_between(bb + [0.03, 0, 0], axle_r + [0.065, 0, 0], tube_r * 0.6, frame, 8), mirrored=True)
    asm.add("frame", cylinder_between(seat_cluster + [0.02, 0, 0], axle_r + [0.065, 0, 0], tube_r * 0.55, frame, 8),
            mirrored=True)
    fork_color = frame if style != "mountain" else palette.DARK
    blade_r = tube_r * (0.8 if style != "mountain" else 1.3)
    asm.add("fork", cylinder_between(crown + [0.045, 0, 0], np.array([0.05, yf, R]), blade_r, fork_color, 8),
            mirrored=True)
    asm.add("fork", translate(box((0.11, 0.03, 0.03), fork_color), crown))
    # seat post and saddle (narrow nose towards −y)
    post_dir = np.array([0.0, math.sin(seat_a), math.cos(seat_a)])
    saddle_pos = seat_cluster + post_dir * rng.uniform(0.12, 0.2)
    asm.add("seatpost", cylinder_between(seat_cluster, saddle_pos, 0.013, palette.CHROME, 8))
    saddle = superellipsoid((0.075, 0.135, 0.025), 0.6, 0.8, palette.DARK if rng.chance(0.7) else frame, 6, 16)

    def narrow_nose(v):
        f = 0.45 + 0.55 * np.clip((v[:, 1] + 0.135) / 0.27, 0.0, 1.0) ** 0.7
        v[:, 0] *= f
        return v

    asm.add("saddle", translate(warp(saddle, narrow_nose), saddle_pos + [0.0, 0.01, 0.02]))
    # steerer, stem, handlebar
    steer_top = ht_top + rng.uniform(0.03, 0.08) * axis
    asm.add("stem", cylinder_between(ht_top, steer_top, 0.014, palette.DARK, 8))
    stem_end = steer_top + np.array([0.0, -rng.uniform(0.08, 0.11) if style != "city" else -0.04,
                                     0.02 if style != "city" else 0.08])
    asm.add("stem", cylinder_between(steer_top, stem_end, 0.013, palette.DARK, 8))
    bar = palette.DARK if style != "city" else palette.CHROME
    if style == "road":
        hw = 0.21
        path = [(0.0, 0.0, 0.0), (hw - 0.03, 0.0, 0.0), (hw, -0.03, 0.0), (hw, -0.08, -0.03), (hw, -0.08, -0.08),
                (hw, -0.04, -0.12), (hw, 0.02, -0.13)]
    elif style == "mountain":
        hw = rng.uniform(0.32, 0.36)
        path = [(0.0, 0.0, 0.0), (hw, 0.01, 0.01)]
    else:
        hw = 0.28
        path = [(0.0, 0.0, 0.0), (0.12, -0.02, 0.0), (0.22, 0.04, 0.01), (hw, 0.12, 0.02)]
    path = np.asarray(path) + stem_end
    asm.add("handlebar", tube(path, 0.011, bar, 8), mirrored=True)
    # drivetrain on the right-hand (+x) side
    ring_r = rng.uniform(0.085, 0.105)
    asm.add("chainring", translate(_axle_cylinder(ring_r, 0.006, palette.GREY, 24), bb + [0.06, 0.0, 0.0]))
    crank = 0.17
    for side, sgn in ((0.075, 1.0), (-0.075, -1.0)):
        end = bb + np.array([side, sgn * crank * 0.5, -sgn * crank * 0.866])
        asm.add("crank", cylinder_between(bb + [side, 0, 0], end, 0.01, palette.GREY, 6))
        asm.add("pedal", translate(box((0.09, 0.06, 0.02), palette.DARK), end + [math.copysign(0.05, side), 0, 0]))
    asm.add("chain", cylinder_between(bb + [0.06, 0, ring_r * 0.9], axle_r + [0.06, 0, 0.03], 0.005, palette.DARK, 4))
    asm.add("chain", cylinder_between(bb + [0.06, 0, -ring_r * 0.9], axle_r + [0.06, 0, -0.03], 0.005, palette.DARK, 4))
    basket = False
    if style == "city":
        for y in (yf, yr):
            guard = _upright_torus(R + 0.01, 0.02, frame, 24, 6, math.radians(20), math.radians(160))
            asm.add("mudguard", translate(guard, (0.0, y, R)))
        basket = rng.chance(0.5)
        if basket:
            asm.add("basket", translate(box((0.3, 0.22, 0.2), palette.WOOD[2]), (0.0, yf + 0.02, ht_top[2] - 0.02)))
    return {"style": style, "wheel_radius": R, "wheelbase": wb, "basket": basket}


MOTORBIKE_STYLES = ("sport", "cruiser", "dirt", "standard")


def build_motorbike(rng: Rng, asm: Assembly) -> dict:
    """Sport (fairing and windscreen), cruiser (long, low, chrome, high bars), dirt (tall, high
    mudguards) or standard motorbike: fat tyres, fork, tank, seat, engine, exhaust on the right."""
    style = rng.cycle(MOTORBIKE_STYLES)
    R = rng.uniform(0.30, 0.33) if style != "dirt" else rng.uniform(0.34, 0.37)
    wb = {"sport": rng.uniform(1.38, 1.45), "cruiser": rng.uniform(1.55, 1.7), "dirt": rng.uniform(1.42, 1.5),
          "standard": rng.uniform(1.4, 1.5)}[style]
    paint = rng.jitter(rng.choice(palette.FRAME + palette.CAR_PAINT[:3]), 0.03)
    metal = palette.CHROME if style == "cruiser" else palette.GREY
    yf, yr = -wb / 2, wb / 2
    rt_f = 0.055 if style != "dirt" else 0.045
    rt_r = 0.07 if style != "dirt" else 0.05
    for y, rt in ((yf, rt_f), (yr, rt_r)):
        c = (0.0, y, R)
        asm.add("wheel", translate(_upright_torus(R - rt, rt, palette.TYRE, 36, 10), c))
        asm.add("hub", translate(_axle_cylinder(R - 1.6 * rt, 0.05, metal, 24), c))
        asm.add("brake_disc", translate(_axle_cylinder((R - 1.6 * rt) * 0.8, 0.006, palette.CHROME, 24), (0.045, y, R)))
    # fork from the front axle up and back to the steering head
    rake = math.radians({"sport": 24, "cruiser": 32, "dirt": 27, "standard": 25}[style])
    fork_len = {"sport": 0.72, "cruiser": 0.9, "dirt": 0.95, "standard": 0.75}[style]
    axis = np.array([0.0, math.sin(rake), math.cos(rake)])
    head = np.array([0.0, yf, R]) + fork_len * axis
    asm.add("fork", cylinder_between((0.09, yf, R), head + [0.09, 0, 0], 0.022, metal, 10), mirrored=True)
    asm.add("fork", translate(box((0.22, 0.06, 0.05), palette.DARK), head))
    # tank, seat, tail
    seat_h = {"sport": 0.82, "cruiser": 0.68, "dirt": 0.93, "standard": 0.8}[style] + rng.uniform(-0.02, 0.02)
    tank_c = head + np.array([0.0, 0.32, -0.06 if style != "cruiser" else -0.1])
    asm.add("tank", translate(superellipsoid((0.15, 0.26, 0.12), 0.7, 0.8, paint, 8, 18), tank_c))
    seat_len = 0.45 if style != "cruiser" else 0.35
    seat_c = np.array([0.0, tank_c[1] + 0.2 + seat_len / 2, seat_h - 0.03])
    asm.add("seat", translate(rounded_box((0.26, seat_len, 0.08), 0.03, palette.DARK), seat_c))
    tail_end_y = yr + (0.1 if style != "cruiser" else -0.05)
    if style in ("sport", "standard", "dirt"):
        # a tail section kicking up behind the seat, the light at its tip
        yc, hl, kick = (seat_c[1] + tail_end_y) / 2 + 0.05, (tail_end_y - seat_c[1]) / 2 + 0.05, 0.25
        tail = superellipsoid((0.12, hl, 0.07), 0.8, 0.8, paint, 6, 14)
        asm.add("tail", translate(rotate(tail, "x", kick), (0.0, yc, seat_h + 0.02)))
        light = (0.0, yc + hl * math.cos(kick), seat_h + 0.02 + hl * math.sin(kick))
    else:  # a cruiser's rear mudguard carries the light
        fender = _upright_torus(R + 0.03, 0.035, palette.CHROME, 20, 6, math.radians(25), math.radians(150))
        asm.add("mudguard", translate(fender, (0.0, yr, R)))
        a = math.radians(25)
        light = (0.0, yr + (R + 0.03) * math.cos(a) + 0.01, R + (R + 0.03) * math.sin(a) + 0.02)
    asm.add("taillight", translate(rounded_box((0.1, 0.05, 0.05), 0.015, palette.TAILLIGHT), light))
    # frame spar from the head down to the swingarm pivot
    pivot = np.array([0.0, yr - 0.55, R + 0.08])
    asm.add("frame", cylinder_between(head + [0.06, 0.02, -0.03], pivot + [0.1, 0, 0.12], 0.025, palette.DARK, 8),
            mirrored=True)
    asm.add("swingarm", cylinder_between(pivot + [0.1, 0, 0], (0.1, yr, R), 0.028, palette.DARK, 8), mirrored=True)
    asm.add("shock", cylinder_between(pivot + [0.09, 0.25, 0.04], (0.09, yr - 0.2, seat_h - 0.12), 0.02, metal, 8),
            mirrored=True)
    # engine between the wheels: a crankcase and a cylinder block leaning forward (a V-twin on a
    # cruiser) up to the tank; a side cover under the seat
    ey = (head[1] + pivot[1]) / 2 + 0.02
    ez = R + 0.01
    crank_color = (0.38, 0.38, 0.40) if style != "cruiser" else palette.CHROME
    asm.add("engine", translate(rounded_box((0.28, 0.42, 0.22), 0.05, crank_color), (0.0, ey, ez)))
    block_base = np.array([0.0, ey - 0.04, ez + 0.08])
    block_top = tank_c[2] - 0.1
    if style == "cruiser":
        for da in (-0.5, 0.5):
            d = np.array([0.0, math.sin(da), math.cos(da)])
            asm.add("engine", cylinder_between(block_base, block_base + (block_top - block_base[2]) * 1.1 * d, 0.07,
                                               palette.CHROME, 14))
    else:
        hh = block_top - block_base[2]
        block = rotate(translate(rounded_box((0.24, 0.18, hh), 0.04, palette.METAL[1]), (0.0, 0.0, hh / 2)), "x", 0.3)
        asm.add("engine", translate(block, block_base))
    asm.add("side_cover", translate(rounded_box((0.24, 0.36, 0.2), 0.04, paint if style != "cruiser" else palette.DARK),
                                    (0.0, pivot[1] + 0.12, seat_h - 0.17)))
    # exhaust on the right (+x): from the engine front down, back along the bike, to a silencer
    ex = 0.15
    path = [(ex - 0.08, ey - 0.18, ez + 0.05), (ex, ey - 0.15, ez - 0.16), (ex, ey + 0.2, ez - 0.18),
            (ex + 0.04, yr - 0.35, R + 0.02)]
    asm.add("exhaust", tube(path, 0.025, palette.CHROME, 8))
    asm.add("exhaust", cylinder_between((ex + 0.04, yr - 0.4, R + 0.015), (ex + 0.05, yr - 0.02, R + 0.08), 0.05,
                                        palette.CHROME if style != "dirt" else palette.DARK, 12))
    # handlebar, headlight, mirrors, fairing
    bar_rise = {"sport": -0.02, "cruiser": 0.22, "dirt": 0.1, "standard": 0.08}[style]
    bar_hw = {"sport": 0.32, "cruiser": 0.4, "dirt": 0.42, "standard": 0.38}[style]
    bar_back = 0.15 if style == "cruiser" else 0.04
    bar = [head + [0.0, 0.0, 0.04], head + [0.12, 0.02, 0.04 + bar_rise * 0.6],
           head + [bar_hw, bar_back, bar_rise + 0.04]]
    asm.add("handlebar", tube(bar, 0.012, palette.DARK if style != "cruiser" else palette.CHROME, 8), mirrored=True)
    asm.add("grip", cylinder_between(np.asarray(bar[-1]) - [0.1, 0.0, 0.0], bar[-1], 0.018, palette.RUBBER, 8),
            mirrored=True)
    light_c = head + np.array([0.0, -0.12, -0.08])
    if style == "sport":
        fairing = superellipsoid((0.22, 0.36, 0.24), 0.8, 0.8, paint, 8, 18)
        asm.add("fairing", translate(rotate(fairing, "x", 0.35), head + [0.0, 0.05, -0.12]))
        asm.add("windscreen", translate(rotate(superellipsoid((0.14, 0.02, 0.15), 1.0, 1.0, palette.DARK_GLASS, 6, 12),
                                               "x", -0.9), head + [0.0, -0.05, 0.12]))
        light_c = head + np.array([0.0, -0.31, -0.14])
    elif style == "dirt":
        guard = _upright_torus(R + 0.03, 0.025, paint, 20, 6, math.radians(50), math.radians(140))
        asm.add("mudguard", translate(guard, (0.0, yf, R + 0.12)))
        plate = rounded_box((0.22, 0.04, 0.2), 0.02, palette.WHITE)
        asm.add("number_plate", translate(plate, head + [0.0, -0.1, -0.05]))
        light_c = head + np.array([0.0, -0.12, -0.05])
    else:
        guard_color = paint if style == "standard" else palette.CHROME
        guard = _upright_torus(R + 0.02, 0.03, guard_color, 20, 6, math.radians(30), math.radians(150))
        asm.add("mudguard", translate(guard, (0.0, yf, R)))
    asm.add("headlight", translate(rotate(cylinder(0.085 if style == "cruiser" else 0.07, 0.06, palette.HEADLIGHT, 20),
                                          "x", math.pi / 2), light_c))
    if style != "dirt":
        sgn = 1.0
        m0 = head + [sgn * 0.22, 0.0, 0.1]
        asm.add("mirror", cylinder_between(head + [sgn * 0.15, 0.0, 0.04], m0, 0.006, palette.DARK, 6),
                mirrored=True)
        asm.add("mirror", translate(rounded_box((0.09, 0.02, 0.06), 0.009, palette.DARK), m0 + [0.03, 0.0, 0.02]),
                mirrored=True)
    return {"style": style, "wheelbase": wb, "wheel_radius": R, "seat_height": seat_h}
