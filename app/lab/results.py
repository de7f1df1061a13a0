"""``make results`` (``python -m app.lab.results``): measure, plot, and rewrite the README's
"Results" section in place (between RESULTS_START and RESULTS_END; the rest is untouched).

Measured in one go, saved to ``docs/results/results.json``:

* fps: ``bench --vs face_recognition`` on the Hamilton clip, every frame, N runs
  alternating (also gives the naming per labelled segment);
* realtime: ``bench --realtime --vs face_recognition``, the clip through the camera path;
* landmarks: ``eval landmarks`` CNN vs dlib (HOG boxes) on the 300-W test faces;
* facenet: the variants in ``models/report.json`` (written by ``python -m models verify``).

``--render-only`` redraws the PNGs and the section from ``results.json`` without measuring.
matplotlib is imported only inside the plotting functions (never on the app's run path).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from ..config import LANDMARK_MODELS as CONFIG_LANDMARK_MODELS
from ..paths import REPO_ROOT as REPO
from ..paths import SHARED_DATA
from .plots import pyplot, save_figure
from .tables import markdown_table

RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
CLIP = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
LANDMARK_TEST = SHARED_DATA / "landmarks300w" / "test"
LANDMARK_MODELS = list(CONFIG_LANDMARK_MODELS)
LANDMARK_BOXES = "hog"    # dlib's predictor was trained on HOG boxes; both models get them
FACENET_REPORT = REPO / "models" / "report.json"
PEER = "face_recognition"
BUSY_LOAD = 1.0           # 1-minute load average from which the section says the CPU was shared


# -- measuring --------------------------------------------------------------------------------
def measure(repeat: int) -> dict:
    """Every measurement of the section, with the machine and its load before starting."""
    from . import bench

    for path in (CLIP, LANDMARK_TEST):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: `make results` needs ../shared/data")
    out = {"meta": meta(bench.machine()), "facenet": read_facenet(FACENET_REPORT)}
    _say(f"bench --vs {PEER}, {repeat} runs")
    out["fps"] = bench.measure(CLIP, vs=PEER, repeat=repeat)
    _say(f"bench --realtime --vs {PEER}")
    out["realtime"] = bench.measure(CLIP, vs=PEER, repeat=1, realtime=True)
    _say("eval landmarks")
    out["landmarks"] = measure_landmarks(LANDMARK_TEST)
    return out


def meta(machine: str) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"machine": machine, "python": platform.python_version(),
            "date": datetime.date.today().isoformat(), "commit": _commit(),
            "load_before": round(load, 2) if load is not None else None}


def measure_landmarks(data: Path) -> list[dict]:
    """``eval landmarks`` rows; per-face errors kept (NaN -> None) for the CED plot."""
    from .landmark_eval import evaluate

    rows = evaluate(data, LANDMARK_MODELS, LANDMARK_BOXES)
    return [{**row, "errors": [None if math.isnan(e) else round(float(e), 5)
                               for e in row["errors"]]} for row in rows]


def read_facenet(path: Path) -> dict:
    """``models/report.json``: its meta and every variant row it lists, whatever the nesting
    (one family under "variants", or several families keyed by name)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make verify` (python -m models verify)")
    report = json.loads(path.read_text())
    rows = list(variant_rows(report))
    if not rows:
        raise ValueError(f"{path}: no variant rows (dicts with a 'variant' key) in it")
    return {"meta": report.get("meta", {}), "variants": rows}


def variant_rows(node, family: str | None = None):
    """Dicts with a "variant" key anywhere under ``node``, tagged with the key they sit under
    (their family) unless that key is just "variants"."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and "variant" in item:
                yield {"family": family, **item} if family and "family" not in item else item
            else:
                yield from variant_rows(item, family)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in ("meta", "problems"):
                yield from variant_rows(value, family if key == "variants" else key)


# -- plotting (matplotlib imported here only) ---------------------------------------------------
def plot_fps(fps: dict, path: Path) -> Path:
    """Bar per side: median FPS, every run as a dot, the ratio in the title."""
    plt = pyplot()
    sides = [s for s in ("ours", PEER) if s in fps]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    medians = [fps[s]["fps_median"] for s in sides]
    bars = ax.bar(sides, medians, color=["tab:blue", "tab:grey"][:len(sides)])
    for i, side in enumerate(sides):
        runs = fps[side]["fps_runs"]
        ax.plot([i] * len(runs), runs, "k.", markersize=4)
    ax.bar_label(bars, labels=[f"{m:.1f}" for m in medians])
    ax.set_ylabel("frames per second (every frame)")
    ratio = f" ({fps['fps_ratio']}x)" if "fps_ratio" in fps else ""
    ax.set_title(f"Hamilton clip, {fps['ours']['frames']} frames{ratio}\n"
                 f"{fps.get('machine', '')}", fontsize=10)
    ax.margins(y=0.15)
    fig.tight_layout()
    return save_figure(fig, plt, path)


def plot_landmarks(rows: list[dict], path: Path, title: str) -> Path:
    """The landmark eval's own CED plot (NaN = a face the detector missed)."""
    from .landmark_eval import plot_ced

    rows = [{**row, "errors": [math.nan if e is None else e for e in row["errors"]]}
            for row in rows]
    return Path(plot_ced(rows, path, title=title))


# -- the README section ---------------------------------------------------------------------
def render_section(results: dict, links: dict[str, str]) -> str:
    """Markdown for the section; ``links`` maps "fps", "landmarks" (PNGs) and "json" to
    paths relative to the README."""
    parts = [_header(results["meta"], links["json"]), _speed(results, links["fps"]),
             _naming(results["fps"]), _landmarks(results["landmarks"], links["landmarks"]),
             _facenet(results["facenet"]), _reproduce()]
    return "\n\n".join(parts) + "\n"


def replace_section(readme: str, section: str) -> str:
    """``readme`` with the text between the results markers replaced by ``section``."""
    starts, ends = readme.count(RESULTS_START), readme.count(RESULTS_END)
    if starts != 1 or ends != 1 or readme.index(RESULTS_START) > readme.index(RESULTS_END):
        raise ValueError(f"README needs exactly one {RESULTS_START} followed by one "
                         f"{RESULTS_END} (found {starts} and {ends})")
    head, rest = readme.split(RESULTS_START)
    _, tail = rest.split(RESULTS_END)
    return f"{head}{RESULTS_START}\n{section}{RESULTS_END}{tail}"


def _header(meta: dict, raw: str) -> str:
    load = meta.get("load_before")
    busy = "" if load is None else f"; 1-minute load average {load} just before measuring" + (
        ": other work shared the CPU, so speeds are lower than on an idle machine"
        if load >= BUSY_LOAD else " (idle)")
    return ("## Results\n\n"
            f"Generated by `make results` on {meta['date']} (commit {meta.get('commit') or '?'})"
            f" on {meta['machine']}, Python {meta['python']}{busy}. Do not edit this section "
            f"by hand: it is rewritten between its markers; raw numbers in [`{raw}`]({raw}).")


def _speed(results: dict, image: str) -> str:
    fps, live = results["fps"], results["realtime"]
    sides = [s for s in ("ours", PEER) if s in fps and s in live]
    runs = {s: ", ".join(f"{r:.1f}" for r in fps[s]["fps_runs"]) for s in sides}
    rows = [["FPS, every frame: median (runs)",
             *(f"{fps[s]['fps_median']:.1f} ({runs[s]})" for s in sides)]]
    if "fps_ratio" in fps:
        rows.append(["ours / face_recognition FPS", f"**{fps['fps_ratio']}x**",
                     *[""] * (len(sides) - 1)])
    rows += [["real time (clip's frame rate): frames shown / dropped",
              *(f"{live[s]['shown']:.0f} / {live[s]['dropped']:.0f}" for s in sides)],
             ["real time: capture -> result latency p50 / p95 ms",
              *("{p50} / {p95}".format(**live[s]["latency_ms"]) for s in sides)]]
    table = markdown_table(["", *sides], rows)
    return (f"### Speed: ours vs face_recognition\n\n![FPS, ours vs face_recognition]({image})"
            f"\n\n{table}\n\nOurs: BlazeFace + CNN landmarks (.tflite, smoothed) + FaceNet "
            f"{results['fps'].get('embedder', 'int8')}, each run a fresh process, detection "
            "ahead of the other stages on worker threads; face_recognition: HOG (upsample 1) + its "
            "ResNet encodings, tolerance 0.6, on the same frames in the same process. Real "
            "time: the file is played through the camera path (`--realtime`); frames a side "
            "was too busy to take are dropped, as with a webcam.")


def _naming(fps: dict) -> str:
    sides = [s for s in ("ours", PEER) if s in fps]
    segments = {s: fps[s]["named"].get("segments", []) for s in sides}
    rows = []
    for i, seg in enumerate(segments["ours"]):
        who = seg["expect"] or "nobody enrolled"
        rows.append([f"{seg['first']}-{seg['last']} ({seg['frames']})", who,
                     *(f"{segments[s][i]['named_expected']} / {segments[s][i]['named_wrong']}"
                       for s in sides)])
    table = markdown_table(["frames (count)", "on screen", *(f"{s}: right / wrong" for s in sides)],
                   rows)
    return ("### Naming on the Hamilton clip, per labelled segment\n\n"
            "Frames in which the expected person was named (right) and in which someone else "
            "enrolled was (wrong; in the audience any name is wrong). Lin-Manuel Miranda and "
            "Alex Lacamoire are enrolled from one photo each, every frame is processed.\n\n"
            + table)


def _landmarks(rows: list[dict], image: str) -> str:
    table = markdown_table(["model", "boxes", "faces found", "NME mean", "NME median",
                    "failures (NME > 0.1 or missed)", "ms/face"],
                   [[r["landmarks"], r["boxes"], f"{r['detected']} / {r['n']}",
                     _num(r["nme_mean"], 4), _num(r["nme_median"], 4),
                     f"{100 * r['fail_rate']:.1f} %", _num(r["ms_per_face"], 2)] for r in rows])
    return ("### Landmarks: CNN vs dlib on the 300-W test faces\n\n"
            f"![Cumulative NME, CNN vs dlib]({image})\n\n{table}\n\n"
            "NME: mean point error over the 68 points / outer-eye-corner distance, on the "
            "165 HELEN test faces of `../shared/data/landmarks300w/test` (our CNN never "
            "trained or tuned on them). "
            "Both models get the same dlib HOG boxes; a missed face counts as a failure.")


def _facenet(facenet: dict) -> str:
    variants = facenet["variants"]
    ms_keys = sorted({k for row in variants for k in row if k.startswith("ms_")})
    family = any(row.get("family") for row in variants)
    header = [*(["family"] if family else []), "variant", "size MB",
              *(f"ms/face, {k[3:-1]} thread{'' if k == 'ms_1t' else 's'}" for k in ms_keys),
              "cosine (mean)", "against", "AUC"]
    rows = [[*([row.get("family") or ""] if family else []), row["variant"],
             _num(row.get("size_mb"), 2), *(_num(row.get(k), 2) for k in ms_keys),
             _num(row.get("cosine_mean"), 4), row.get("source", ".pb"), _num(row.get("auc"), 4)]
            for row in variants]
    machine = facenet.get("meta", {}).get("machine", "?")
    return ("### FaceNet variants\n\n" + markdown_table(header, rows) + "\n\nFrom "
            "[`models/report.json`](models/report.json) (`make verify`, measured on "
            f"{machine}): cosine of each file's embeddings to those of the file it was converted "
            "from (\"against\") on the aligned 5-celebrity faces, verification AUC over all "
            "their pairs. Details: "
            "[`models/REPORT.md`](models/REPORT.md).")


def _reproduce() -> str:
    return ("### Reproduce\n\n```sh\nmake results    # all of the above, then rewrites this "
            "section and docs/results/*.png\n```\n\nwhich runs (from the repository root):"
            "\n\n```sh\nV=../shared/data/video/short_hamilton_clip.mp4\n"
            ".venv/bin/python -m app bench --source $V --vs face_recognition --repeat 2\n"
            ".venv/bin/python -m app bench --source $V --vs face_recognition --realtime "
            "--repeat 1\n.venv/bin/python -m app eval landmarks --data "
            "../shared/data/landmarks300w/test --landmarks cnn dlib --boxes hog\n"
            ".venv/bin/python -m models verify   # models/report.json\n```")


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _say(text: str) -> None:
    print(f"results: {text}", file=sys.stderr, flush=True)


# -- command ----------------------------------------------------------------------------------
def write(results: dict, readme: Path, out: Path) -> None:
    """Plots into ``out``, then the README section (image links relative to the README)."""
    fps_png = plot_fps(results["fps"], out / "fps.png")
    ced_png = plot_landmarks(results["landmarks"], out / "landmarks_ced.png",
                             title=f"300-W test, {results['landmarks'][0]['n']} faces, "
                                   f"{LANDMARK_BOXES} boxes")
    links = {k: Path(os.path.relpath(p, readme.parent)).as_posix() for k, p in
             (("fps", fps_png), ("landmarks", ced_png), ("json", out / "results.json"))}
    readme.write_text(replace_section(readme.read_text(), render_section(results, links)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lab.results", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results",
                        help="where results.json and the PNGs go [%(default)s]")
    parser.add_argument("--repeat", type=int, default=2, help="every-frame bench runs per side")
    parser.add_argument("--render-only", action="store_true",
                        help="redraw from OUT/results.json, measure nothing")
    args = parser.parse_args(argv)
    try:
        run(args.readme, args.out, args.repeat, args.render_only)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(readme: Path, out: Path, repeat: int, render_only: bool) -> None:
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} not found")
    replace_section(readme.read_text(), "")  # bad markers fail now, not after measuring
    saved = out / "results.json"
    if render_only:
        if not saved.is_file():
            raise FileNotFoundError(f"{saved} not found: run without --render-only first")
        results = json.loads(saved.read_text())
    else:
        results = measure(repeat)
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1) + "\n")
    write(results, readme, out)
    print(f"wrote {out}/*.png and the Results section of {readme}")


if __name__ == "__main__":
    sys.exit(main())
