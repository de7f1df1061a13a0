"""``python -m app.lab.index_bench``: issue 22's acceptance run and the README's archive
numbers, end to end through the command line.

Builds a folder of three copies of the Hamilton clip (one in a subfolder; ``--copies``
adds more, for throughput), the 5-celebrity clip of the demo (a second real clip, nobody
in it enrolled) and a text file named ``notes.mp4``; enrols Lin-Manuel Miranda and Alex
Lacamoire from their photos; then times ``index --workers N`` on the local pool, the same
with ``--cluster ray``, and ``--resume`` on the local index, checks ``who`` and that
both backends agree, and prints one markdown table. Wall times are whole commands
(interpreter, models, workers or Ray starting), so they are what a user waits for.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import REPO_ROOT, SHARED_DATA

LIN = "Lin-Manuel Miranda"


def build_folder(work: Path, copies: int) -> Path:
    from .demo import build_clip

    folder = work / "videos"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    clip = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
    names = ["a.mp4", "b.mp4", "sub/c.mp4"] + [f"more/h{i}.mp4" for i in range(copies - 3)]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, folder / name)
    settings = json.loads((REPO_ROOT / "assets" / "demo.json").read_text())
    build_clip(SHARED_DATA / "identities" / "5-celebrity" / "val", folder / "celebrities.mp4",
               settings)
    (folder / "notes.mp4").write_text("a text file, not a video\n")
    return folder


def cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    return time.perf_counter() - start, done


def index(folder: Path, out: Path, gallery: Path, workers: int, *more: str) -> dict:
    wall, done = cli("index", str(folder), "--out", str(out), "--gallery", str(gallery),
                     "--workers", str(workers), "--no-progress", *more)
    summary = re.search(r"files: .*", done.stdout)
    speed = re.search(r"([\d.]+)x real time", done.stdout)
    per_core = re.search(r"([\d.]+)x per busy core", done.stdout)
    memory = re.search(r"peak worker memory (\d+) MB", done.stdout)
    hours = re.search(r"\(([\d.]+) s\) of video", done.stdout)
    return {"wall_s": wall, "exit": done.returncode,
            "summary": summary.group(0) if summary else done.stdout + done.stderr,
            "failed": re.findall(r"failed: (\S+):", done.stderr),
            "speed_inside": float(speed.group(1)) if speed else None,
            "per_core": float(per_core.group(1)) if per_core else None,
            "memory_mb": int(memory.group(1)) if memory else None,
            "video_s": float(hours.group(1)) if hours else 0.0}


def who(out: Path) -> list[dict]:
    _, done = cli("who", LIN, "--index", str(out), "--json")
    return [json.loads(line) for line in done.stdout.splitlines()]


def rounded(found: list[dict]) -> list[tuple]:
    return sorted((a["file"], round(a["start_s"], 1), round(a["end_s"], 1)) for a in found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder for the videos and indexes [a temporary one]")
    parser.add_argument("--copies", type=int, default=3, help="Hamilton copies [3]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="index-bench-"))
    folder = build_folder(work, max(3, args.copies))
    gallery = work / "gallery.sqlite3"
    gallery.unlink(missing_ok=True)
    for name, photo in ((LIN, "lin-manuel-miranda.png"), ("Alex Lacamoire", "alex-lacamoire.png")):
        _, done = cli("enroll", "--gallery", str(gallery), "--name", name,
                      str(SHARED_DATA / "video" / photo))
        assert done.returncode == 0, done.stderr
    runs = {}
    for label, more in (("local", ()), ("ray", ("--cluster", "ray"))):
        if label == "ray" and args.no_ray:
            continue
        shutil.rmtree(work / f"I_{label}", ignore_errors=True)
        runs[label] = index(folder, work / f"I_{label}", gallery, args.workers, *more)
    runs["resume"] = index(folder, work / "I_local", gallery, args.workers, "--resume")
    report(runs, work, os.cpu_count())
    return 0


def report(runs: dict, work: Path, cores: int | None) -> None:
    local = who(work / "I_local")
    print(f"who {LIN!r} (local): " + "; ".join(
        f"{Path(a['file']).name} {a['start_s']:.2f}-{a['end_s']:.2f}" for a in local))
    if "ray" in runs:
        print(f"ray appearances == local (file, start, end to 0.1 s): "
              f"{rounded(who(work / 'I_ray')) == rounded(local)}")
    video_s = runs["local"]["video_s"]
    print(f"\n{cores} cores; {video_s:.1f} s of video; work folder {work}\n")
    print("| run | exit | wall s (whole command) | x real time (whole) | x real time "
          "(driver's count) | x real time per busy core | peak worker MB | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for label, run in runs.items():
        whole = video_s / run["wall_s"] if label != "resume" else float("nan")
        print(f"| {label} | {run['exit']} | {run['wall_s']:.1f} | {whole:.1f} | "
              f"{run['speed_inside'] or '-'} | {run['per_core'] or '-'} | "
              f"{run['memory_mb'] or '-'} | "
              f"{', '.join(Path(f).name for f in run['failed']) or '-'} |")
    print(f"\nresume / first run: {runs['resume']['wall_s'] / runs['local']['wall_s']:.2f}")
    for label, run in runs.items():
        print(f"{label}: {run['summary']}")


if __name__ == "__main__":
    sys.exit(main())
