"""Temporal smoothing of per-frame similarity transforms with a Kalman / RTS smoother.

`rts_smooth(values)`: a constant-velocity Kalman filter run forwards, then the Rauch–Tung–
Striebel backward pass (the optimal fixed-interval smoother for that linear-Gaussian model),
per column of a (T, D) signal. `smooth_transforms`: scale in log space, rotation as rotation
vectors of each frame relative to the chain (R_f = R_ref · exp(r_f), R_ref the frames' mean
rotation, so no wrap-around within ±π of it), translation as is.
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from geom3d.align import Sim3

__all__ = ["rts_smooth", "smooth_transforms"]


def rts_smooth(values, process_noise: float = 1e-4, measurement_noise: float = 1e-2) -> np.ndarray:
    """Smooth (T, D) (or (T,)) measurements; noise values are variances per frame step."""
    z = np.asarray(values, dtype=np.float64)
    flat = z.reshape(len(z), -1)
    T = len(z)
    if T < 3:
        return z.copy()
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = process_noise * np.array([[1 / 3, 0.5], [0.5, 1.0]])  # continuous white acceleration, dt = 1
    H = np.array([[1.0, 0.0]])
    out = np.empty_like(flat)
    for d in range(flat.shape[1]):
        x = np.array([flat[0, d], 0.0])
        P = np.diag([measurement_noise, 1.0])
        xs_f, Ps_f, xs_p, Ps_p = [], [], [], []
        for k in range(T):
            if k:
                x, P = F @ x, F @ P @ F.T + Q
            xs_p.append(x)
            Ps_p.append(P)
            S = float(P[0, 0]) + measurement_noise
            K = (P @ H.T / S)[:, 0]
            x = x + K * (flat[k, d] - x[0])
            P = P - np.outer(K, H @ P)
            xs_f.append(x)
            Ps_f.append(P)
        xs = xs_f[-1]
        out[-1, d] = xs[0]
        Ps = Ps_f[-1]
        for k in range(T - 2, -1, -1):
            C = Ps_f[k] @ F.T @ np.linalg.inv(Ps_p[k + 1])
            xs = xs_f[k] + C @ (xs - xs_p[k + 1])
            Ps = Ps_f[k] + C @ (Ps - Ps_p[k + 1]) @ C.T
            out[k, d] = xs[0]
    return out.reshape(z.shape)


def smooth_transforms(transforms: Sim3, *, rotation=(1e-5, 3e-4), translation=(1e-4, 3e-5),
                      log_scale=(1e-8, 1e-3)) -> Sim3:
    """Smooth Sim3 (T,) over time (see the module docstring). Each pair is (process noise,
    measurement noise) as variances per frame step, in radians², world units² and (log scale)²:
    the defaults trust the translations (well measured by the correspondences) and average the
    rotations (the noisiest part of a partial view's fit) over a few frames."""
    R = transforms.R.double()
    ref = roma.special_procrustes(R.sum(0))
    rv = roma.rotmat_to_rotvec(ref.T @ R).numpy()
    rv_s = rts_smooth(rv, *rotation)
    t_s = rts_smooth(transforms.t.double().numpy(), *translation)
    s_s = np.exp(rts_smooth(np.log(transforms.scale.double().numpy()), *log_scale))
    R_s = ref @ roma.rotvec_to_rotmat(torch.from_numpy(rv_s))
    return Sim3(torch.from_numpy(s_s), R_s, torch.from_numpy(t_s))
