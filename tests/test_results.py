"""``make results`` pieces on tiny hand-made inputs: the README section rewrite, the tables,
the plots, report.json reading. Nothing heavy is measured here."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from app.lab import results
from app.lab.results import RESULTS_END, RESULTS_START, render_section, replace_section
from tests.conftest import REPO_ROOT

LINKS = {"fps": "docs/r/fps.png", "landmarks": "docs/r/ced.png", "json": "docs/r/results.json"}


def segments(right_ann: int, wrong_audience: int) -> list[dict]:
    return [{"first": 0, "last": 1, "expect": "Ann", "frames": 2,
             "named_expected": right_ann, "named_wrong": 0},
            {"first": 2, "last": 2, "expect": None, "frames": 1,
             "named_expected": 0, "named_wrong": wrong_audience}]


def landmark_row(name: str, errors: list) -> dict:
    found = [e for e in errors if e is not None]
    return {"landmarks": name, "boxes": "hog", "n": len(errors), "detected": len(found),
            "nme_mean": float(np.mean(found)), "nme_median": float(np.median(found)),
            "fail_rate": round(sum(e is None or e > 0.1 for e in errors) / len(errors), 4),
            "ms_per_face": 2.5,
            "errors": errors}


@pytest.fixture
def tiny():
    return {
        "meta": {"machine": "Test CPU, x86_64, 2 CPU cores, Linux", "python": "3.11.7",
                 "date": "2025-01-02", "commit": "abc1234", "load_before": 0.5},
        "fps": {"ours": {"fps_median": 100.0, "fps_runs": [99.0, 101.0], "frames": 3,
                         "named": {"segments": segments(2, 0)}},
                "face_recognition": {"fps_median": 5.0, "fps_runs": [5.0, 5.0],
                                     "named": {"segments": segments(1, 1)}},
                "fps_ratio": 20.0},
        "realtime": {"ours": {"shown": 3, "dropped": 0, "latency_ms": {"p50": 12.0, "p95": 30.0}},
                     "face_recognition": {"shown": 1, "dropped": 2,
                                          "latency_ms": {"p50": 150.0, "p95": 200.0}}},
        "landmarks": [landmark_row("cnn", [0.02, 0.04, None]),
                      landmark_row("dlib", [0.05, 0.07, 0.2])],
        "facenet": {"meta": {"machine": "verify box"},
                    "variants": [{"variant": "pb", "size_mb": 94.02, "cosine_mean": 1.0,
                                  "auc": 0.988, "ms_1t": 25.4},
                                 {"variant": "int8", "size_mb": 24.58, "cosine_mean": 0.99663,
                                  "auc": 0.9881, "ms_1t": 8.58}]},
    }


# -- README rewriting ---------------------------------------------------------------------------
README = f"# Title\n\nintro\n\n{RESULTS_START}\nold results\n{RESULTS_END}\n\n## After\ntail\n"


def test_only_the_text_between_the_markers_is_replaced():
    new = replace_section(README, "## Results\nnew\n")
    assert new == f"# Title\n\nintro\n\n{RESULTS_START}\n## Results\nnew\n{RESULTS_END}" \
                  "\n\n## After\ntail\n"
    assert replace_section(new, "## Results\nnew\n") == new  # idempotent


@pytest.mark.parametrize("readme", [
    "# no markers\n",
    f"{RESULTS_START}\nonly a start\n",
    f"{RESULTS_END}\nend before start\n{RESULTS_START}\n",
    f"{RESULTS_START}\n{RESULTS_END}\n{RESULTS_START}\n{RESULTS_END}\n",
])
def test_missing_duplicated_or_swapped_markers_are_refused(readme):
    with pytest.raises(ValueError, match="exactly one"):
        replace_section(readme, "x\n")


def test_repository_readme_has_the_markers_and_its_images_exist():
    readme = (REPO_ROOT / "README.md").read_text()
    replace_section(readme, "")
    section = readme.split(RESULTS_START)[1].split(RESULTS_END)[0]
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", section)
    assert len(images) == 2
    assert all((REPO_ROOT / image).is_file() for image in images), images


# -- the section --------------------------------------------------------------------------------
def test_section_tables_hold_the_numbers_given(tiny):
    text = render_section(tiny, LINKS)
    assert text.startswith("## Results\n")
    assert "2025-01-02" in text and "Test CPU, x86_64, 2 CPU cores" in text
    assert "load average 0.5 just before measuring (idle)" in text
    tiny["meta"]["load_before"] = 3.2
    assert "load average 3.2 just before measuring: other work shared the CPU" in \
        render_section(tiny, LINKS)
    assert "| FPS, every frame: median (runs) | 100.0 (99.0, 101.0) | 5.0 (5.0, 5.0) |" in text
    assert "**20.0x**" in text
    assert "| 3 / 0 | 1 / 2 |" in text and "| 12.0 / 30.0 | 150.0 / 200.0 |" in text
    assert "| 0-1 (2) | Ann | 2 / 0 | 1 / 0 |" in text
    assert "| 2-2 (1) | nobody enrolled | 0 / 0 | 0 / 1 |" in text
    assert "| cnn | hog | 2 / 3 | 0.0300 | 0.0300 | 33.3 % | 2.50 |" in text
    assert "| dlib | hog | 3 / 3 | 0.1067 | 0.0700 | 33.3 % | 2.50 |" in text
    assert "| variant | size MB | ms/face, 1 thread | cosine (mean) | against | AUC |" in text
    assert "| int8 | 24.58 | 8.58 | 0.9966 | .pb | 0.9881 |" in text and "verify box" in text
    assert "![FPS, ours vs face_recognition](docs/r/fps.png)" in text
    assert "(docs/r/ced.png)" in text and "(docs/r/results.json)" in text


def test_facenet_rows_are_read_from_one_or_several_families(tmp_path):
    one = {"meta": {}, "variants": [{"variant": "pb"}, {"variant": "int8"}], "problems": []}
    assert [r["variant"] for r in results.variant_rows(one)] == ["pb", "int8"]
    two = {"meta": {}, "facenet": {"variants": [{"variant": "pb"}]},
           "keras": {"variants": [{"variant": "int8", "size_mb": 23.0, "source": ".h5"}]}}
    rows = list(results.variant_rows(two))
    assert [(r["family"], r["variant"]) for r in rows] == [("facenet", "pb"), ("keras", "int8")]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(two))
    table = results._facenet(results.read_facenet(path))
    assert "| family | variant |" in table and "| keras | int8 | 23.00 | — | .h5 | — |" in table
    flat = {"variants": [{"family": "keras", "variant": "pb"}, {"variant": "int8"}]}
    assert [r.get("family") for r in results.variant_rows(flat)] == ["keras", None]
    path.write_text(json.dumps({"meta": {}, "variants": []}))
    with pytest.raises(ValueError, match="no variant rows"):
        results.read_facenet(path)
    with pytest.raises(FileNotFoundError, match="make verify"):
        results.read_facenet(tmp_path / "missing.json")


# -- plots --------------------------------------------------------------------------------------
def colour_pixels(path, bgr) -> int:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return int(np.count_nonzero(np.all(np.abs(image.astype(int) - bgr) <= 8, axis=2)))


def test_fps_chart_draws_one_bar_per_side(tiny, tmp_path):
    path = results.plot_fps(tiny["fps"], tmp_path / "fps.png")
    blue, grey = (180, 119, 31), (127, 127, 127)  # matplotlib tab:blue and tab:grey
    assert colour_pixels(path, blue) > 10 * colour_pixels(path, grey) > 0  # 100 vs 5 FPS


def test_landmark_curve_is_drawn_with_missed_faces(tiny, tmp_path):
    path = results.plot_landmarks(tiny["landmarks"], tmp_path / "ced.png", title="tiny")
    assert colour_pixels(path, (180, 119, 31)) > 0 and colour_pixels(path, (14, 127, 255)) > 0


# -- the command --------------------------------------------------------------------------------
def test_render_only_rewrites_the_readme_section_with_relative_links(tiny, tmp_path, capsys):
    readme, out = tmp_path / "README.md", tmp_path / "docs" / "r"
    readme.write_text(README)
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(tiny))
    assert results.main(["--readme", str(readme), "--out", str(out), "--render-only"]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\n## After\ntail\n")
    assert "(docs/r/fps.png)" in text and "(docs/r/landmarks_ced.png)" in text
    assert (out / "fps.png").is_file() and (out / "landmarks_ced.png").is_file()


def test_command_refuses_bad_readme_or_missing_results_clearly(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert results.main(["--readme", str(readme), "--out", str(tmp_path), "--render-only"]) == 2
    assert "exactly one" in capsys.readouterr().err
    readme.write_text(README)
    assert results.main(["--readme", str(readme), "--out", str(tmp_path), "--render-only"]) == 2
    assert "results.json not found" in capsys.readouterr().err


def test_matplotlib_stays_off_the_apps_run_path():
    code = ("import sys, app.cli, app.runloop, app.lab.bench, app.lab.results, app.lab.landmark_eval; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"
