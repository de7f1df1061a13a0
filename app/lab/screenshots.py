"""``python -m app.lab.screenshots``: the README's pictures of the window, made the way a
user would see it: ``run_video.py`` on a virtual X screen (Xvfb), keys sent with xdotool,
the screen read with xwd. Needs ``apt-get install xvfb xdotool x11-apps``.

Writes into ``docs/`` (``--out``):

* ``window.png``: the shared Hamilton clip at frame 100, two people enrolled from their
  photos;
* ``window-paused-both.png``: paused, both landmark models drawn (``l`` twice);
* ``window-side-by-side-720p.png``: the clip scaled to 1280x720, side by side (``s``),
  the window fitted to a 1600x900 screen;
* ``window-enrol.png``: ``e`` pressed on a face (a photo drifting slightly): the samples
  being collected and the name dialog, a name in Latin and Greek being typed.
"""
from __future__ import annotations

import argparse
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from ..outputs.sinks import WINDOW_TITLE
from ..paths import REPO_ROOT, SHARED_DATA

SCREEN = (1600, 900)
CLIP = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
PEOPLE = {"Lin-Manuel Miranda": SHARED_DATA / "video" / "lin-manuel-miranda.png",
          "Alex Lacamoire": SHARED_DATA / "video" / "alex-lacamoire.png"}
DIALOG_TITLE = "Enrol a face"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO_ROOT / "docs"), help="folder [docs/]")
    args = parser.parse_args(argv)
    missing = [t for t in ("Xvfb", "xdotool", "xwd") if shutil.which(t) is None]
    if missing:
        print(f"error: {', '.join(missing)} missing: apt-get install xvfb xdotool x11-apps",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, virtual_screen() as display:
        work = Path(tmp)
        gallery = enrol_people(work / "gallery.db")
        shoot_clip(display, gallery, out)
        shoot_side_by_side(display, gallery, scaled_clip(work / "clip720.mp4"), out)
        shoot_enrolment(display, work / "empty.db", still_clip(work / "still.mp4"), out)
    return 0


def shoot_clip(display: str, gallery: Path, out: Path) -> None:
    with app_window(display, CLIP, gallery) as app:
        app.wait_frames(100)  # the second shot: Lin-Manuel Miranda (frames 82-210)
        save(app.grab(), out / "window.png")
        app.key("space")
        app.key("l", "l")
        time.sleep(1.0)
        save(app.grab(), out / "window-paused-both.png")


def shoot_side_by_side(display: str, gallery: Path, clip: Path, out: Path) -> None:
    with app_window(display, clip, gallery) as app:
        app.key("s")
        app.wait_frames(110)
        save(app.grab(), out / "window-side-by-side-720p.png")


def shoot_enrolment(display: str, gallery: Path, clip: Path, out: Path) -> None:
    with app_window(display, clip, gallery) as app:
        time.sleep(1.0)
        app.key("e")
        dialog = app.wait_for_window(DIALOG_TITLE, 20)
        time.sleep(0.5)
        app.xdotool("windowfocus", "--sync", dialog)
        app.xdotool("type", "--delay", "60", "Zoë Ωμέγα")
        time.sleep(1.0)
        save(app.grab(extra=dialog), out / "window-enrol.png")
        app.xdotool("key", "Escape")


def save(image: np.ndarray, path: Path) -> None:
    cv2.imwrite(str(path), image)
    print(f"{path}: {image.shape[1]}x{image.shape[0]}")


# -- the app in a window ----------------------------------------------------------------------
class AppWindow:
    def __init__(self, display: str, proc: subprocess.Popen, events: Path):
        self.display, self.proc, self.events = display, proc, events
        self.window = self.wait_for_window(WINDOW_TITLE, 120)

    def event_lines(self) -> int:
        """Frames shown so far: lines of the events file (a partial file while it runs)."""
        folder = self.events.parent
        for path in (*folder.glob(f"{self.events.stem}.partial-*"), self.events):
            if path.exists():
                return path.read_bytes().count(b"\n")
        return 0

    def wait_frames(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` frames have been shown (the events file has their lines)."""
        deadline = time.monotonic() + timeout
        while self.event_lines() < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{count} frames not shown within {timeout:.0f} s")
            time.sleep(0.02)

    def xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=20,
                              env={**os.environ, "DISPLAY": self.display}).stdout

    def wait_for_window(self, title: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app ended (exit {self.proc.returncode})")
            ids = self.xdotool("search", "--name", f"^{title}$").split()
            if ids:
                return ids[0]
            time.sleep(0.1)
        raise RuntimeError(f"no window {title!r} after {timeout:.0f} s")

    def key(self, *keys: str) -> None:
        for key in keys:
            self.xdotool("key", "--window", self.window, key)
            time.sleep(0.3)

    def grab(self, extra: str | None = None) -> np.ndarray:
        """The window (and ``extra``, another window) cut out of the screen."""
        xwd = subprocess.run(["xwd", "-root", "-silent"], capture_output=True, check=True,
                             env={**os.environ, "DISPLAY": self.display}, timeout=20).stdout
        screen = read_xwd(xwd)
        boxes = [self.geometry(w) for w in (self.window, extra) if w]
        x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        return screen[y1:y2, x1:x2]

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        shell = dict(line.split("=", 1) for line in
                     self.xdotool("getwindowgeometry", "--shell", window).split())
        x, y = int(shell["X"]), int(shell["Y"])
        return x, y, x + int(shell["WIDTH"]), y + int(shell["HEIGHT"])


@contextmanager
def app_window(display: str, source: Path, gallery: Path):
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", TF_CPP_MIN_LOG_LEVEL="3")
    events = gallery.with_name(f"events-{time.monotonic_ns()}.jsonl")
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "run_video.py"), "--source",
                             str(source), "--gallery", str(gallery), "--no-progress",
                             "--events", str(events)],
                            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield AppWindow(display, proc, events)
    finally:
        stop(proc, 10)


@contextmanager
def virtual_screen(log: Path | None = None):
    """A fresh Xvfb on a free display number (Xvfb picks it: -displayfd); yields the
    display name (":N"). -noreset: an X server resets when its last client leaves, and an
    app started during that reset cannot connect (Qt aborts: "could not connect to
    display"). Xvfb's output goes to ``log`` when given; RuntimeError (with its tail) when
    it does not start within 15 s."""
    read_fd, write_fd = os.pipe()
    with open(log or os.devnull, "wb") as log_file:
        proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                                 f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp",
                                 "-noreset"],
                                pass_fds=(write_fd,), stdout=log_file,
                                stderr=subprocess.STDOUT)
    os.close(write_fd)
    number = _read_display_number(read_fd, deadline=time.monotonic() + 15)
    try:
        if not number.strip().isdigit():
            tail = log.read_text(errors="replace")[-1000:] if log else ""
            raise RuntimeError(f"Xvfb did not start: {tail}")
        yield f":{number.decode().strip()}"
    finally:
        stop(proc, 5)


def _read_display_number(read_fd: int, deadline: float) -> bytes:
    """What Xvfb writes to -displayfd (the number and a newline), closing ``read_fd``."""
    number = b""
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([read_fd], [], [], 0.5)[0]:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break  # Xvfb exited
            number += chunk
    os.close(read_fd)
    return number


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- inputs ------------------------------------------------------------------------------------
def enrol_people(gallery: Path) -> Path:
    for name, photo in PEOPLE.items():
        subprocess.run([sys.executable, "-m", "app", "enroll", "--gallery", str(gallery),
                        "--name", name, str(photo)], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return gallery


def scaled_clip(path: Path, size: tuple[int, int] = (1280, 720)) -> Path:
    """The shared clip at 720p (a 720p source is what makes side by side too wide)."""
    capture = cv2.VideoCapture(str(CLIP))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"),
                             capture.get(cv2.CAP_PROP_FPS), size)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC))
    capture.release()
    writer.release()
    return path


def still_clip(path: Path, frames: int = 300) -> Path:
    """Alex Lacamoire's photo, drifting slightly: a face that stays while a name is typed."""
    image = cv2.imread(str(PEOPLE["Alex Lacamoire"]), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for i in range(frames):
        shift = np.float32([[1, 0, 4 * np.sin(i / 7)], [0, 1, 3 * np.cos(i / 11)]])
        writer.write(cv2.warpAffine(image, shift, (width, height),
                                    borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def read_xwd(data: bytes) -> np.ndarray:
    """A BGR image from ``xwd`` output (ZPixmap, 24 or 32 bits per pixel)."""
    fields = struct.unpack(">25I", data[:100])
    header, width, height = fields[0], fields[4], fields[5]
    byte_order, bits, stride, colours = fields[7], fields[11], fields[12], fields[19]
    if fields[2] != 2 or bits not in (24, 32):
        raise ValueError(f"XWD format {fields[2]} at {bits} bits per pixel")
    step = bits // 8
    rows = np.frombuffer(data, np.uint8, count=stride * height, offset=header + 12 * colours)
    pixels = rows.reshape(height, stride)[:, :width * step].reshape(height, width, step)
    if byte_order:  # MSBFirst: xRGB / RGB
        pixels = pixels[:, :, ::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


if __name__ == "__main__":
    sys.exit(main())
