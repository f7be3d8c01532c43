"""Road and rail vehicles: car, bus, train (built in metres, nose towards −y, z up, ground at z = 0)."""

from __future__ import annotations

import math

import numpy as np

from . import palette
from .assembly import Assembly, Rng
from .primitives import box, cylinder_between, loft, rotate, rounded_box, superellipsoid, translate, warp
from .shapes import side_extrusion, superellipse_loop, wheel

__all__ = ["build_car", "build_bus", "build_train"]

CAR_STYLES = ("sedan", "hatchback", "suv", "wagon", "coupe")


def build_car(rng: Rng, asm: Assembly) -> dict:
    """Sedan, hatchback, SUV, wagon or coupe: a lofted lower body, a glass cabin with a painted
    roof and pillars, four wheels, lights, grille, number plates and mirrors."""
    style = rng.cycle(CAR_STYLES)
    suv = style == "suv"
    L = rng.uniform(4.4, 4.9) if style in ("sedan", "suv", "wagon") else rng.uniform(3.8, 4.3) \
        if style == "hatchback" else rng.uniform(4.2, 4.6)
    W = rng.uniform(1.85, 1.98) if suv else rng.uniform(1.72, 1.88)
    R = rng.uniform(0.36, 0.40) if suv else rng.uniform(0.30, 0.34)
    clearance = rng.uniform(0.20, 0.26) if suv else rng.uniform(0.13, 0.18)
    belt = rng.uniform(1.02, 1.12) if suv else rng.uniform(0.80, 0.86) if style == "coupe" else rng.uniform(0.86, 0.96)
    roof = belt + (rng.uniform(0.60, 0.72) if suv else rng.uniform(0.40, 0.48) if style == "coupe"
                   else rng.uniform(0.50, 0.58))
    hood_drop = rng.uniform(0.06, 0.16)
    hood_front = belt - hood_drop
    yf, yr = -L / 2, L / 2
    hood_len = L * (rng.uniform(0.24, 0.30) if style != "coupe" else rng.uniform(0.30, 0.36))
    ws_base = yf + hood_len
    roof_front = ws_base + (rng.uniform(0.45, 0.60) if suv else rng.uniform(0.55, 0.75))
    tail_len = 0.18
    if style == "sedan":
        rear_base = yr - rng.uniform(0.85, 1.05)
        roof_rear = rear_base - rng.uniform(0.50, 0.70)
        tail_top = belt + rng.uniform(0.0, 0.05)
    elif style == "coupe":
        rear_base = yr - rng.uniform(0.45, 0.65)
        roof_rear = rear_base - rng.uniform(0.90, 1.15)
        tail_top = belt + rng.uniform(0.0, 0.04)
    else:  # hatchback / suv / wagon: the rear window drops almost to the tail
        rear_base = yr - tail_len
        roof_rear = rear_base - (rng.uniform(0.35, 0.50) if style == "hatchback" else rng.uniform(0.10, 0.20))
        tail_top = belt
    paint = rng.jitter(rng.choice(palette.CAR_PAINT), 0.03)
    hub_color = rng.choice(palette.METAL)
    hw = W / 2

    # lower body: superellipse sections along y; the nose and tail sections shrink to round them off
    stations = [
        (yf, clearance + 0.14, hood_front - 0.10, 0.80 * hw),
        (yf + 0.06, clearance + 0.06, hood_front - 0.03, 0.93 * hw),
        (yf + 0.18, clearance, hood_front, hw),
        (ws_base, clearance, belt, hw),
        (rear_base, clearance, tail_top, hw),
        (yr - 0.06, clearance + 0.05, tail_top - 0.03, 0.94 * hw),
        (yr, clearance + 0.12, tail_top - 0.10, 0.84 * hw),
    ]
    if rear_base < yr - 0.12:
        stations.insert(5, (yr - 0.12, clearance, tail_top, hw))
    sections = np.stack([superellipse_loop(h, zb, zt, y, exponent=5.0, points=28) for y, zb, zt, h in stations])
    asm.add("body", loft(sections, paint))

    # cabin: a side profile extruded across and tapered towards the roof (tumblehome); glass colour
    gw0 = 0.92 * hw
    taper = rng.uniform(0.78, 0.88)
    gw1 = gw0 * taper
    mid = (roof_front + roof_rear) / 2
    profile = [(ws_base, belt - 0.05), (rear_base, tail_top - 0.05), (roof_rear, roof), (mid, roof + 0.02),
               (roof_front, roof)]
    cabin = side_extrusion(profile, 2 * gw0, palette.GLASS)

    def tumblehome(v):
        f = 1.0 - (1.0 - taper) * np.clip((v[:, 2] - belt) / (roof - belt), 0.0, 1.0)
        v[:, 0] *= f
        return v

    asm.add("cabin", warp(cabin, tumblehome))
    asm.add("roof", translate(rounded_box((2 * gw1 + 0.03, roof_rear - roof_front + 0.08, 0.06), 0.025, paint),
                              (0.0, mid, roof + 0.005)))
    pr = rng.uniform(0.035, 0.05)
    x0, x1 = gw0, gw1  # the glass half-width at the belt and at the roof
    asm.add("pillar", cylinder_between((x0, ws_base, belt - 0.02), (x1, roof_front, roof), pr, paint, 8),
            mirrored=True)
    asm.add("pillar", cylinder_between((x0, rear_base, tail_top - 0.02), (x1, roof_rear, roof), pr * 1.4,
                                       paint, 8), mirrored=True)
    yb = ws_base + 0.45 * (rear_base - ws_base)
    asm.add("pillar", cylinder_between((x0, yb, belt - 0.02), (x1, yb, roof), pr, paint, 8), mirrored=True)

    # wheels, with dark wheel wells behind them
    y_front = yf + rng.uniform(0.75, 0.95)
    y_rear = yr - rng.uniform(0.80, 1.05)
    tw = rng.uniform(0.20, 0.26)
    xw = hw - tw / 2 + 0.015
    for y in (y_front, y_rear):
        # an arch a little above the wheel, clear of the ground
        well = wheel(R * 1.1, 0.10, palette.DARK, 0.5, palette.DARK)[0][1]
        asm.add("wheel_well", translate(well, (hw - 0.045, y, R * 1.1 + 0.01)), mirrored=True)
        for name, mesh in wheel(R, tw, hub_color):
            asm.add("wheel" if name == "tyre" else "wheel_hub", translate(mesh, (xw, y, R)), mirrored=True)

    # lights, grille, plates, mirrors
    z_light = hood_front - 0.09
    asm.add("headlight", translate(rounded_box((0.26 * W / 1.8, 0.12, 0.09), 0.02, palette.HEADLIGHT),
                                   (0.70 * hw, yf + 0.06, z_light)), mirrored=True)
    asm.add("grille", translate(box((0.36 * W, 0.08, 0.13), palette.DARK), (0.0, yf + 0.025, z_light - 0.04)))
    asm.add("plate", translate(box((0.50, 0.04, 0.12), palette.PLATE), (0.0, yf + 0.005, clearance + 0.21)))
    z_tail = tail_top - 0.13
    asm.add("taillight", translate(rounded_box((0.30 * W / 1.8, 0.10, 0.09), 0.02, palette.TAILLIGHT),
                                   (0.72 * hw, yr - 0.05, z_tail)), mirrored=True)
    asm.add("plate", translate(box((0.50, 0.04, 0.12), palette.PLATE), (0.0, yr - 0.005, clearance + 0.25)))
    asm.add("mirror", translate(rounded_box((0.14, 0.08, 0.10), 0.025, paint),
                                (hw + 0.03, ws_base + 0.12, belt + 0.04)), mirrored=True)
    return {"style": style, "length": L, "width": W, "roof_height": roof + 0.035, "wheel_radius": R,
            "front_axle_y": y_front, "rear_axle_y": y_rear}


BUS_STYLES = ("city", "coach", "double_decker", "school")


def build_bus(rng: Rng, asm: Assembly) -> dict:
    """City bus, coach, double-decker or school bus (with a bonnet): a rounded box body, window
    bands, a large windscreen at −y, a destination sign, a door on the right, 2 or 3 axles."""
    style = rng.cycle(BUS_STYLES)
    L = {"city": rng.uniform(10.5, 12.5), "coach": rng.uniform(11.5, 13.5),
         "double_decker": rng.uniform(9.5, 11.0), "school": rng.uniform(9.0, 11.0)}[style]
    W = rng.uniform(2.45, 2.55)
    H = rng.uniform(4.2, 4.4) if style == "double_decker" else rng.uniform(3.4, 3.7) if style == "coach" \
        else rng.uniform(2.9, 3.2)
    paint = rng.jitter(palette.BUS_PAINT[0] if style == "school" else rng.choice(palette.BUS_PAINT), 0.03)
    R = rng.uniform(0.48, 0.53)
    base = rng.uniform(0.30, 0.40)
    yf, yr = -L / 2, L / 2
    hw = W / 2
    bonnet = rng.uniform(1.1, 1.4) if style == "school" else 0.0
    y_body = yf + bonnet
    body_len = yr - y_body
    asm.add("body", translate(rounded_box((W, body_len, H - base), 0.18, paint),
                              (0.0, (y_body + yr) / 2, (H + base) / 2)))
    if bonnet:
        asm.add("bonnet", translate(rounded_box((W * 0.8, bonnet + 0.3, 1.1), 0.15, paint),
                                    (0.0, yf + (bonnet + 0.3) / 2, base + 0.55 + 0.3)))
        asm.add("grille", translate(box((W * 0.45, 0.05, 0.55), palette.DARK), (0.0, yf - 0.005, base + 0.85)))
    # windscreen and destination sign on the front face
    ws_bottom = base + (1.25 if style != "school" else 1.35)
    ws_top = H - (0.45 if style != "double_decker" else H / 2 + 0.15)
    asm.add("windscreen", translate(box((W - 0.24, 0.04, ws_top - ws_bottom), palette.DARK_GLASS),
                                    (0.0, y_body - 0.005, (ws_top + ws_bottom) / 2)))
    asm.add("sign", translate(box((W * 0.7, 0.04, 0.22), palette.INDICATOR if rng.chance(0.5) else palette.DARK),
                              (0.0, y_body - 0.005, H - 0.25)))
    if style == "double_decker":
        asm.add("windscreen", translate(box((W - 0.24, 0.04, 0.9), palette.DARK_GLASS),
                                        (0.0, y_body - 0.005, H - 0.85)))
    # side windows: panes between pillars, one or two decks
    decks = [(base + 1.35, H - 0.45)] if style != "double_decker" else \
        [(base + 1.25, base + 2.05), (H - 1.25, H - 0.4)]
    y_start, y_end = y_body + 1.9, yr - 0.5
    panes = max(3, int(round((y_end - y_start) / rng.uniform(1.1, 1.5))))
    gap = 0.14
    pane_len = (y_end - y_start - (panes - 1) * gap) / panes
    for z0, z1 in decks:
        for k in range(panes):
            yc = y_start + k * (pane_len + gap) + pane_len / 2
            asm.add("window", translate(box((0.04, pane_len, z1 - z0), palette.GLASS), (hw + 0.005, yc, (z0 + z1) / 2)),
                    mirrored=True)
        if style != "double_decker" or z0 > base + 2:
            asm.add("window", translate(box((0.04, 1.2, z1 - z0), palette.GLASS),
                                        (-hw - 0.005, y_body + 0.9, (z0 + z1) / 2)))
    # the door on the right-hand side (+x), just behind the windscreen
    asm.add("door", translate(box((0.04, 1.1, H - base - 0.55), palette.DARK_GLASS),
                              (hw + 0.005, y_body + 0.85, base + 0.1 + (H - base - 0.55) / 2)))
    asm.add("rear_window", translate(box((W - 0.5, 0.04, 0.7), palette.GLASS), (0.0, yr + 0.005, H - 0.95)))
    asm.add("headlight", translate(rounded_box((0.32, 0.08, 0.16), 0.03, palette.HEADLIGHT),
                                   (hw - 0.35, y_body - 0.02 if not bonnet else yf + 0.05, base + 0.45 if not bonnet
                                    else base + 0.95)), mirrored=True)
    asm.add("taillight", translate(rounded_box((0.16, 0.08, 0.35), 0.03, palette.TAILLIGHT),
                                   (hw - 0.18, yr + 0.02, base + 0.7)), mirrored=True)
    asm.add("bumper", translate(rounded_box((W + 0.04, 0.25, 0.3), 0.06, palette.DARK), (0.0, yf + 0.08, base + 0.1)))
    asm.add("bumper", translate(rounded_box((W + 0.04, 0.25, 0.3), 0.06, palette.DARK), (0.0, yr - 0.08, base + 0.1)))
    axles = [yf + bonnet + rng.uniform(2.0, 2.6), yr - rng.uniform(2.6, 3.2)]
    if style == "coach" and rng.chance(0.5):
        axles.append(axles[-1] + 1.3)
    tw = 0.32
    for y in axles:
        for name, mesh in wheel(R, tw, palette.METAL[0], 0.55):
            asm.add("wheel" if name == "tyre" else "wheel_hub", translate(mesh, (hw - tw / 2 + 0.02, y, R)),
                    mirrored=True)
    return {"style": style, "length": L, "width": W, "height": H, "axles": len(axles)}


TRAIN_STYLES = ("high_speed", "commuter", "locomotive")


def build_train(rng: Rng, asm: Assembly) -> dict:
    """A leading rail car: streamlined high-speed nose, flat-fronted commuter unit or a diesel
    locomotive; cab windows at −y, a window band (or louvres), a stripe, bogies with wheels."""
    style = rng.cycle(TRAIN_STYLES)
    L = rng.uniform(20.0, 25.0) if style != "locomotive" else rng.uniform(17.0, 21.0)
    W = rng.uniform(2.9, 3.1)
    H = rng.uniform(3.8, 4.1)
    floor = rng.uniform(0.95, 1.15)
    paint = rng.jitter(rng.choice(palette.TRAIN_PAINT), 0.03)
    stripe = rng.choice([c for c in palette.LIVERY if c != paint])
    yf, yr = -L / 2, L / 2
    hw = W / 2
    nose = rng.uniform(5.0, 8.0) if style == "high_speed" else rng.uniform(0.6, 1.0)
    # body: superellipse sections; the nose lowers and narrows towards −y
    t = np.linspace(0.0, 1.0, 8)  # 0 at the tip of the nose, 1 where the full section starts
    sections = []
    for ti in t:
        y = yf + nose * (1 - (1 - ti) ** 2) if style == "high_speed" else yf + nose * ti
        shape = math.sqrt(max(0.0, 1 - (1 - ti) ** 2))
        if style == "high_speed":
            top = floor + 0.55 + (H - floor - 0.55) * shape
            half = hw * (0.35 + 0.65 * shape)
            bottom = floor - 0.25 + 0.25 * ti
        else:
            top = H - 0.25 * (1 - shape)
            half = hw * (0.88 + 0.12 * shape)
            bottom = floor - 0.1
        sections.append(superellipse_loop(half, bottom, top, y, exponent=3.5 if style == "high_speed" else 6.0,
                                          points=28))
    sections.append(superellipse_loop(hw, floor - 0.1, H, yr - 0.3, 6.0, 28))
    sections.append(superellipse_loop(hw * 0.96, floor - 0.05, H - 0.1, yr, 6.0, 28))
    z_win0, z_win1 = floor + 1.0, floor + 1.9
    asm.add("body", loft(np.stack(sections), paint))
    # a livery stripe along both sides, below the windows
    y_stripe = yf + nose * (0.75 if style == "high_speed" else 1.0)
    asm.add("stripe", translate(box((0.04, yr - 0.3 - y_stripe, 0.35), stripe),
                                (hw + 0.004, (y_stripe + yr - 0.3) / 2, floor + 0.4)), mirrored=True)
    if style == "high_speed":
        # a dark canopy of cab windows on the upper nose
        tc = 0.55
        yc = yf + nose * (1 - (1 - tc) ** 2)
        zc = floor + 0.55 + (H - floor - 0.55) * math.sqrt(1 - (1 - tc) ** 2)
        canopy = superellipsoid((hw * 0.7, nose * 0.28, 0.5), 0.8, 0.8, palette.DARK_GLASS, 8, 16)
        asm.add("windscreen", translate(rotate(canopy, "x", -0.35), (0.0, yc, zc - 0.22)))
    if style != "high_speed":
        asm.add("windscreen", translate(box((W * 0.75, 0.05, z_win1 - z_win0 + 0.1), palette.DARK_GLASS),
                                        (0.0, yf - 0.01, (z_win0 + z_win1) / 2 + 0.1)))
    # side windows (passenger cars) or louvres (locomotive)
    y0 = yf + nose + (1.0 if style != "locomotive" else 0.8)
    if style == "locomotive":
        for k in range(4):
            yc = y0 + 1.5 + k * 2.6
            asm.add("louvre", translate(box((0.04, 1.8, 0.9), palette.DARK), (hw + 0.01, yc, floor + 1.6)),
                    mirrored=True)
        asm.add("cab_window", translate(box((0.04, 0.8, 0.7), palette.DARK_GLASS), (hw + 0.01, yf + 0.9, floor + 1.9)),
                mirrored=True)
    else:
        pane = rng.uniform(1.2, 1.8)
        gap = 0.35
        n = int((yr - 1.0 - y0) // (pane + gap))
        for k in range(n):
            yc = y0 + k * (pane + gap) + pane / 2
            asm.add("window", translate(box((0.04, pane, z_win1 - z_win0), palette.GLASS),
                                        (hw + 0.005, yc, (z_win0 + z_win1) / 2)), mirrored=True)
    # roof equipment
    if style != "locomotive" and rng.chance(0.7):
        yp = yf + nose + 3.0
        asm.add("pantograph", translate(box((0.8, 1.0, 0.2), palette.GREY), (0.0, yp, H + 0.1)))
        asm.add("pantograph", cylinder_between((0.0, yp, H + 0.2), (0.0, yp + 1.2, H + 0.9), 0.04, palette.GREY, 6))
        asm.add("pantograph", cylinder_between((0.0, yp + 1.2, H + 0.9), (0.0, yp + 0.4, H + 1.4), 0.04,
                                               palette.GREY, 6))
        asm.add("pantograph", translate(box((1.6, 0.1, 0.06), palette.GREY), (0.0, yp + 0.4, H + 1.42)))
    else:
        asm.add("roof_box", translate(rounded_box((W * 0.6, L * 0.3, 0.35), 0.1, palette.GREY), (0.0, 0.0, H)))
    asm.add("headlight", translate(rounded_box((0.25, 0.1, 0.15), 0.04, palette.HEADLIGHT),
                                   (hw * 0.55, yf + (0.02 if style != "high_speed" else nose * 0.08), floor + 0.25)),
            mirrored=True)
    # bogies: a frame and two axles of wheels each
    R = rng.uniform(0.43, 0.47)
    gauge = 1.435
    for yb in (yf + nose * (0.7 if style == "high_speed" else 1.0) + 2.2, yr - 2.8):
        asm.add("bogie", translate(box((W * 0.8, 2.9, 0.45), palette.DARK), (0.0, yb, R + 0.2)))
        for dy in (-1.1, 1.1):
            for name, mesh in wheel(R, 0.14, palette.METAL[1], 0.8, palette.METAL[1]):
                asm.add("wheel" if name == "tyre" else "wheel_hub",
                        translate(mesh, (gauge / 2 + 0.07, yb + dy, R)), mirrored=True)
    asm.add("coupler", cylinder_between((0.0, yr - 0.1, floor - 0.1), (0.0, yr + 0.4, floor - 0.1), 0.12, palette.DARK))
    asm.add("taillight", translate(rounded_box((0.22, 0.1, 0.14), 0.03, palette.TAILLIGHT),
                                   (hw * 0.6, yr + 0.02, floor + 0.3)), mirrored=True)
    return {"style": style, "length": L, "width": W, "height": H}
