"""``python -m models verify``: check every FaceNet file of both families against its source.

Writes models/REPORT.md and models/report.json: one table, per family and variant the
file size, how its embeddings compare with its own source's (the .tflite files with the
family's frozen .pb; the Keras .pb with the .h5 run in Keras) on the aligned
5-celebrity faces, verification ROC AUC over all pairs of those labelled faces, and
the median latency per face at 1 and 2 threads. Exits 1 when a file fails the build's
rule for its step (``app.toolchain.build.check_step``) or its AUC is more than 0.01 under its
family's .pb.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from ..lab.metrics import cosine_rows, pair_scores, roc_auc
from ..lab.tables import markdown_table
from ..paths import (
    FACENET_FAMILIES,
    FACENET_VARIANTS,
    MODELS_DIR,
    REPO_ROOT,
    facenet_pb_path,
    facenet_tflite_path,
)
from .build import check_step

MAX_AUC_DROP = 0.01
THREADS = (1, 2)
REPORT_MD = MODELS_DIR / "REPORT.md"
REPORT_JSON = MODELS_DIR / "report.json"


def median_ms_per_face(embedder, crops: np.ndarray, repeats: int) -> float:
    """Median wall time of one single-face call, after two warm-up calls."""
    for crop in crops[:2]:
        embedder.embed(crop[None])
    times = []
    for i in range(repeats):
        crop = crops[i % len(crops)][None]
        start = time.perf_counter()
        embedder.embed(crop)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _shown(path: Path) -> str:
    """As models/README.md names files: from the repository root, packages from site-packages."""
    path = Path(path)
    if "site-packages" in path.parts or not path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(path.parents[1]))
    return str(path.relative_to(REPO_ROOT))


def measure(family: str, variant: str, path: Path, make_embedder, faces, source,
            repeats: int) -> tuple[dict, np.ndarray]:
    """One row, and the embeddings (the next steps' reference when this is the .pb)."""
    embedders = {threads: make_embedder(threads) for threads in THREADS}
    embeddings = embedders[max(THREADS)].embed(faces.crops)
    row = {"family": family, "variant": variant, "file": _shown(path),
           "size_mb": round(path.stat().st_size / 1e6, 2),
           "source": source[0] if source else "(source)"}
    if source:
        ok, _ = check_step(variant, embeddings, source[1])
        cosine = cosine_rows(embeddings, source[1])
        row.update(cosine_mean=round(float(cosine.mean()), 5),
                   cosine_min=round(float(cosine.min()), 5),
                   max_abs_diff=float(f"{np.abs(embeddings - source[1]).max():.2g}"), step_ok=ok)
    row["auc"] = round(roc_auc(*pair_scores(embeddings, faces.labels)), 4)
    for threads, embedder in embedders.items():
        row[f"ms_{threads}t"] = round(median_ms_per_face(embedder, faces.crops, repeats), 2)
        getattr(embedder, "close", lambda: None)()
    print(json.dumps(row), flush=True)
    return row, embeddings


def keras_h5_embeddings(crops: np.ndarray) -> np.ndarray:
    """The Keras family's source: the .h5 itself, run in Keras."""
    from ..stages.embed import prewhiten
    from . import keras_facenet

    model = keras_facenet.load_h5(keras_facenet.h5_path())
    return keras_facenet.keras_embed(model, prewhiten(crops))


def measure_family(family: str, faces, repeats: int) -> list[dict]:
    from ..stages.embed import PbEmbedder, TfliteEmbedder

    pb = facenet_pb_path(family)
    source = (".h5", keras_h5_embeddings(faces.crops)) if family == "keras" else None
    row, reference = measure(family, "pb", pb, lambda t: PbEmbedder(pb, t, family), faces,
                             source, repeats)
    rows = [row]
    for variant in FACENET_VARIANTS:
        path = facenet_tflite_path(variant, family)
        rows.append(measure(family, variant, path,
                            lambda t, p=path: TfliteEmbedder(p, t, family=family), faces,
                            (".pb", reference), repeats)[0])
    return rows


def check(rows: list[dict]) -> list[str]:
    pb_auc = {r["family"]: r["auc"] for r in rows if r["variant"] == "pb"}
    problems = []
    for row in rows:
        name = f"{row['family']}-{row['variant']}"
        if not row.get("step_ok", True):
            problems.append(f"{name}: vs {row['source']} max abs diff {row['max_abs_diff']}, "
                            f"mean cosine {row['cosine_mean']} (fails the build's rule)")
        if row["auc"] < pb_auc[row["family"]] - MAX_AUC_DROP:
            problems.append(f"{name}: AUC {row['auc']} more than {MAX_AUC_DROP} under its .pb "
                            f"{pb_auc[row['family']]}")
    return problems


def machine() -> str:
    from ..lab.bench import machine as bench_machine
    return f"{bench_machine()}, Python {platform.python_version()}"


def _cell(row: dict, key: str, digits: int) -> str:
    return f"{row[key]:.{digits}f}" if key in row else "—"


def write_report(rows: list[dict], meta: dict, problems: list[str]) -> None:
    REPORT_JSON.write_text(json.dumps({"meta": meta, "variants": rows, "problems": problems}, indent=2) + "\n")
    lines = [
        "# FaceNet model report", "",
        "Generated by `python -m models verify` (run `make verify`); do not edit by hand.", "",
        f"- machine: {meta['machine']}",
        f"- faces: {meta['faces']} aligned 5-celebrity photos ({meta['people']} people, "
        f"{meta['pairs']} pairs); {meta['missed']} photos without a detected face skipped",
        "- vs source: embeddings of each file vs those of the file it was made from, on the "
        "same crops (`.tflite` from the family's `.pb`; the Keras `.pb` from the `.h5` run in "
        "Keras; CASIA's `.pb` is itself the source)",
        "- AUC: verification ROC AUC over all pairs (same person vs different)",
        f"- ms/face: median of {meta['repeats']} single-face calls, at 1 and 2 threads; "
        "timings on a shared machine are noisy (a few ms)", "",
    ]
    header = ["family", "variant", "file", "size MB", "vs", "cosine mean", "cosine min",
              "max abs diff", "AUC", "ms/face 1 thread", "ms/face 2 threads"]
    table = [[r["family"], r["variant"], f"`{r['file']}`", r["size_mb"], r["source"],
              _cell(r, "cosine_mean", 4), _cell(r, "cosine_min", 4),
              f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "—", f"{r['auc']:.4f}",
              r["ms_1t"], r["ms_2t"]] for r in rows]
    lines.append(markdown_table(header, table, ["", "", "", ":", "", ":", ":", ":", ":", ":", ":"]))
    lines += ["", "Result: " + ("every file passes its build check (float32 steps: max abs "
                                "diff < 1e-4; fp16 mean cosine >= 0.9999; int8 >= 0.995) and "
                                "is within 0.01 AUC of its family's .pb"
                                if not problems else "FAILED: " + "; ".join(problems)), ""]
    REPORT_MD.write_text("\n".join(lines + landmark_lines()))


def landmark_lines() -> list[str]:
    """The landmark CNN's .tflite checks, as the build recorded them in its io.json."""
    from ..paths import CNN68_DIR
    from ..stages.landmarks.cnn import read_io

    record = read_io(CNN68_DIR / "io.json").get("tflite")
    if not record:
        return ["", "Landmark CNN: no .tflite recorded in io.json; run `python -m models build`", ""]
    lines = ["", "# Landmark CNN report", "",
             "Recorded by `python -m models build` (`app/toolchain/cnn68_tflite.py`) in "
             "`models/landmarks/cnn68/io.json`; checks: " + record["check"] + ".", "",
             "| file | size MB | sha256 | max abs diff vs .pb | NME | NME - .pb | ms/face 1 thread |",
             "|---|---:|---|---:|---:|---:|---:|",
             f"| `frozen.pb` | {(CNN68_DIR / 'frozen.pb').stat().st_size / 1e6:.2f} | "
             f"`{record['source_sha256'][:16]}…` | (source) | {record['pb_nme']} | — | "
             f"{record['pb_ms_per_face']} |"]
    for row in record["variants"].values():
        lines.append(f"| `{row['file']}` | {row['size_bytes'] / 1e6:.2f} | `{row['sha256'][:16]}…` "
                     f"| {row['max_abs_diff']:.1e} | {row['nme']} | {row['nme_delta']:+.5f} | "
                     f"{row['ms_per_face']} |")
    for variant, why in record.get("rejected", {}).items():
        lines.append(f"| {variant} (not installed) | — | — | — | — | — | {why} |")
    return lines + [""]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m models verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per file and thread count")
    args = parser.parse_args(argv)

    from .faces import aligned_faces

    faces = aligned_faces()
    rows = [row for family in FACENET_FAMILIES for row in measure_family(family, faces, args.repeats)]
    problems = check(rows)
    n = len(faces.crops)
    meta = {"machine": machine(), "faces": n, "people": len(set(faces.labels)),
            "pairs": n * (n - 1) // 2, "missed": len(faces.missed), "repeats": args.repeats}
    write_report(rows, meta, problems)
    print(REPORT_MD.read_text())
    return 1 if problems else 0
