"""FreeOrbit4D's released alignment ("box rule"), as released, on the problem it was made for.

The released pipeline completes each frame on its own: VGGT reconstructs the frame with its
generated views ("source": the complete cloud, and the source's pointmap of the frame's own
view), the scene reconstruction gives the frame's partial pointmap ("target"). The two pointmaps
share the frame's pixels (pixel-synchronised pairs), and the complete cloud is brought onto the
target by a bounding-box rule with R = I. From VVeiCao/FreeOrbit4D, `core/alignment.py`
(commit a710e77), `PointCloudAligner.align_single_frame`, lines 464–546:

1. source ratios from its box: width/height = size_z / size_y, length/height = size_x / size_y
   (lines 465–469);
2. the target's z extent is rescaled about its minimum so that its width/height ratio is the
   source's (lines 472–482);
3. x_scale = (target length/height) / (source length/height), applied to the source's x about
   its box centre (lines 484–494);
4. one isotropic scale from the y extents (lines 496–500);
5. translation: y so that the boxes' y maxima meet (`t_y = tgt_max_y − src_max_y`, line 506: in
   OpenCV camera coordinates, y down, that is the bottom of the box), x and z so that the box
   centres meet (lines 507–512);
6. the complete cloud: x pre-scaled about its *mean* x, scaled, R = I, translated (lines
   538–546).

Temporal smoothing (`smooth_trajectory`, lines 643–800): x_scale and the aligned clouds' mean
offsets from frame 0 are smoothed by `kalman_smooth_1d` (lines 52–88: a constant-velocity
Kalman filter run forwards and backwards from the two ends, the two passes averaged; process
noise Q = q·I, measurement noise r; the released defaults `configs/default.yaml` q = 1e-9,
r = 0.2, z penalty 0.01 on z's q), and each cloud is shifted by (smoothed − raw) offset.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["BoxRuleFit", "box_rule_fit", "apply_box_rule", "kalman_smooth_1d", "smooth_box_rule"]


@dataclass(frozen=True)
class BoxRuleFit:
    """x_scale, scale, translation (3,), and the x centre the complete cloud is pre-scaled about."""

    x_scale: float
    scale: float
    translation: np.ndarray
    centre_x: float

    @property
    def center_x(self) -> float:
        """Deprecated: the old name of `centre_x`."""
        warnings.warn("BoxRuleFit.center_x is renamed centre_x", DeprecationWarning, stacklevel=2)
        return self.centre_x


def box_rule_fit(src_points, tgt_points, complete_points) -> BoxRuleFit:
    """The released rule (module docstring, steps 1–5) from pixel-synchronised source (N, 3) and
    target (N, 3) points; `complete_points` (M, 3) fixes the pre-scaling centre (step 6)."""
    src = np.asarray(src_points, np.float64)
    tgt = np.asarray(tgt_points, np.float64)
    s_min, s_max = src.min(0), src.max(0)
    s_size = s_max - s_min
    src_wh = s_size[2] / s_size[1] if s_size[1] > 0 else 1.0
    src_lh = s_size[0] / s_size[1] if s_size[1] > 0 else 1.0
    t_min, t_max = tgt.min(0), tgt.max(0)
    t_size = t_max - t_min
    t_width_new = t_size[1] * src_wh if t_size[1] > 0 else t_size[2]
    width_scale = t_width_new / t_size[2] if t_size[2] > 0 else 1.0
    tgt_scaled = tgt.copy()
    tgt_scaled[:, 2] = t_min[2] + (tgt[:, 2] - t_min[2]) * width_scale
    ts_min, ts_max = tgt_scaled.min(0), tgt_scaled.max(0)
    ts_size = ts_max - ts_min
    tgt_lh = ts_size[0] / ts_size[1] if ts_size[1] > 0 else 1.0
    x_scale = tgt_lh / src_lh if src_lh > 0 else 1.0
    src_cx = (s_min[0] + s_max[0]) / 2
    pre = src.copy()
    pre[:, 0] = src_cx + (src[:, 0] - src_cx) * x_scale
    p_size = pre.max(0) - pre.min(0)
    scale = ts_size[1] / p_size[1] if p_size[1] > 0 else 1.0
    scaled = pre * scale
    sc_min, sc_max = scaled.min(0), scaled.max(0)
    t_y = ts_max[1] - sc_max[1]
    src_c = (sc_min[[0, 2]] + sc_max[[0, 2]]) / 2
    tgt_c = (ts_min[[0, 2]] + ts_max[[0, 2]]) / 2
    T = np.array([tgt_c[0] - src_c[0], t_y, tgt_c[1] - src_c[1]])
    return BoxRuleFit(float(x_scale), float(scale), T, float(np.mean(np.asarray(complete_points)[:, 0])))


def apply_box_rule(fit: BoxRuleFit, complete_points, x_scale: float | None = None) -> np.ndarray:
    """Step 6: the complete cloud (M, 3) placed by `fit` (optionally with a smoothed x_scale)."""
    pts = np.asarray(complete_points, np.float64).copy()
    xs = fit.x_scale if x_scale is None else x_scale
    pts[:, 0] = fit.centre_x + (pts[:, 0] - fit.centre_x) * xs
    return pts * fit.scale + fit.translation


def _kalman_pass(z: np.ndarray, q: float, r: float) -> np.ndarray:
    x, P = np.array([z[0], 0.0]), np.eye(2)
    F, Q, H = np.array([[1.0, 1.0], [0.0, 1.0]]), q * np.eye(2), np.array([[1.0, 0.0]])
    out = []
    for m in z:
        x, P = F @ x, F @ P @ F.T + Q
        S = float(P[0, 0]) + r
        K = (P @ H.T / S).reshape(2)
        x = x + K * (m - x[0])
        P = (np.eye(2) - np.outer(K, H)) @ P
        out.append(x[0])
    return np.array(out)


def kalman_smooth_1d(values, process_noise: float = 1e-9, measurement_noise: float = 0.2) -> np.ndarray:
    """The released bidirectional smoother (module docstring): forward and backward constant-
    velocity Kalman passes averaged."""
    z = np.asarray(values, np.float64)
    return (_kalman_pass(z, process_noise, measurement_noise)
            + _kalman_pass(z[::-1], process_noise, measurement_noise)[::-1]) / 2


def smooth_box_rule(fits: list[BoxRuleFit], completes: list, *, process_noise: float = 1e-9,
                    measurement_noise: float = 0.2, z_penalty: float = 0.01) -> list[np.ndarray]:
    """The released pass 2: per frame the complete cloud placed with the smoothed x_scale, then
    shifted by the smoothed minus the raw offset of the aligned clouds' means from frame 0."""
    xs = kalman_smooth_1d([f.x_scale for f in fits], process_noise, measurement_noise)
    raw = [apply_box_rule(f, c) for f, c in zip(fits, completes)]
    centres = np.stack([r.mean(0) for r in raw])
    offsets = centres - centres[0]
    smooth = np.stack([kalman_smooth_1d(offsets[:, d], process_noise * (z_penalty if d == 2 else 1.0),
                                        measurement_noise) for d in range(3)], 1)
    return [apply_box_rule(f, c, x) + (smooth[i] - offsets[i]) for i, (f, c, x) in enumerate(zip(fits, completes, xs))]
