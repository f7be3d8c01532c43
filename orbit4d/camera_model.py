"""Cameras estimated from the static background: depth + feature matches + PnP (OpenCV).

`estimate_cameras(frames, depth, masks, K)`: ORB features on the background (outside the
dilated foreground masks) of each frame are matched (Hamming, cross-checked) with a keyframe's;
the keyframe's matched features are lifted to 3D with its depth and pose; `cv2.solvePnPRansac`
(then Levenberg–Marquardt refinement on the inliers) gives the frame's world-to-camera pose.
The keyframe is the first frame until a frame keeps fewer than `keyframe_ratio` of the
keyframe's first inlier count; then the previous frame takes over (fewer hand-overs, less drift
than a frame-to-frame chain). The world frame is the first camera's (as in FreeOrbit4D).
A frame with too few matches, or whose pose turns more than `max_step_degrees` from the
previous frame's, keeps the previous pose (with a warning). The intrinsics K are
given (e.g. from the field of view). An `orbit4d.estimators.CameraEstimator`.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch

from geom3d import Cameras

__all__ = ["estimate_cameras"]


def _features(orb, frame: np.ndarray, keep: np.ndarray):
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return orb.detectAndCompute(grey, keep.astype(np.uint8) * 255)


def estimate_cameras(frames: np.ndarray, depth: np.ndarray, masks: np.ndarray, K: np.ndarray, *,
                     features: int = 3000, margin: int = 5, reprojection_px: float = 2.0,
                     min_inliers: int = 30, keyframe_ratio: float = 0.4, max_step_degrees: float = 15.0) -> Cameras:
    """Cameras (T,) float64 from uint8 frames (T, H, W, 3), depth (T, H, W), masks (T, H, W), K (3, 3)."""
    T, h, w = depth.shape
    K = np.asarray(K, dtype=np.float64)
    orb = cv2.ORB_create(nfeatures=features)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    background = [~cv2.dilate(m.astype(np.uint8), kernel).astype(bool) & (d > 0) for m, d in zip(masks, depth)]
    def solve(key, i):
        """Pose of frame i from the keyframe `key` (its features lifted to 3D), or None."""
        kp, desc, j = key
        kp2, desc2 = feats[i]
        if desc is None or desc2 is None or len(kp) < 4 or len(kp2) < 4:
            return None
        matches = matcher.match(desc, desc2)
        uv1 = np.array([kp[m.queryIdx].pt for m in matches], dtype=np.float64).reshape(-1, 2)
        uv2 = np.array([kp2[m.trainIdx].pt for m in matches], dtype=np.float64).reshape(-1, 2)
        # bilinear depth at the sub-pixel keypoint; any empty neighbour drops it
        u0 = np.clip(np.floor(uv1[:, 0]).astype(int), 0, w - 2)
        v0 = np.clip(np.floor(uv1[:, 1]).astype(int), 0, h - 2)
        fu, fv = np.clip(uv1[:, 0] - u0, 0, 1), np.clip(uv1[:, 1] - v0, 0, 1)
        d = depth[j]
        q = np.stack([d[v0, u0], d[v0, u0 + 1], d[v0 + 1, u0], d[v0 + 1, u0 + 1]], 1)
        z = (q * np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], 1)).sum(1)
        good = (q > 0).all(1) & (q.max(1) <= 1.2 * q.min(1))
        if good.sum() < min_inliers:
            return None
        # OpenCV keypoints put pixel centres at integer coordinates, as geom3d does
        ray = np.linalg.solve(K, np.stack([uv1[good, 0], uv1[good, 1], np.ones(good.sum())]))
        world = ((ray * z[good]).T - t[j]) @ R[j]  # keyframe camera → world
        # iterative PnP from the previous pose: the background is often one ground plane, where
        # EPnP's minimal solutions flip between the two mirror-image poses
        rvec0 = cv2.Rodrigues(R[i - 1])[0]
        tvec0 = t[i - 1].reshape(3, 1).copy()
        found, rvec, tvec, inliers = cv2.solvePnPRansac(world, uv2[good], K, None, rvec0, tvec0, useExtrinsicGuess=True,
                                                        reprojectionError=reprojection_px, iterationsCount=500,
                                                        flags=cv2.SOLVEPNP_ITERATIVE)
        if not found or inliers is None or len(inliers) < min_inliers:
            return None
        idx = inliers[:, 0]
        rvec, tvec = cv2.solvePnPRefineLM(world[idx], uv2[good][idx], K, None, rvec, tvec)
        Ri = cv2.Rodrigues(rvec)[0]
        turn = np.degrees(np.arccos(np.clip((np.trace(Ri @ R[i - 1].T) - 1) / 2, -1, 1)))
        if turn > max_step_degrees:  # a degenerate consensus (e.g. matches on one line): not a camera step
            return None
        return Ri, tvec[:, 0], len(idx)

    feats = [_features(orb, frames[i], background[i]) for i in range(T)]
    R, t = [np.eye(3)] + [None] * (T - 1), [np.zeros(3)] + [None] * (T - 1)
    key, key_inliers = (*feats[0], 0), None
    for i in range(1, T):
        got = solve(key, i)
        if (got is None or (key_inliers and got[2] < keyframe_ratio * key_inliers)) and key[2] != i - 1:
            # the keyframe's view has drifted away: the previous frame becomes the keyframe
            key, key_inliers = (*feats[i - 1], i - 1), None
            got = solve(key, i)
        if got is None:
            warnings.warn(f"camera estimation: frame {i} has too few background matches; keeping the previous "
                          "pose", stacklevel=2)
            R[i], t[i] = R[i - 1], t[i - 1]
            continue
        R[i], t[i] = got[0], got[1]
        key_inliers = key_inliers or got[2]
    Kt = torch.from_numpy(K).expand(T, 3, 3)
    return Cameras(Kt, torch.from_numpy(np.stack(R)), torch.from_numpy(np.stack(t)), (h, w))
