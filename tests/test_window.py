"""The real OpenCV window on a virtual X screen: keys, live enrolment by typing, closing it.

Each test runs ``run_video.py`` in a subprocess, as a user would, on an Xvfb display and
presses keys with xdotool. Skipped when Xvfb or xdotool is missing (Debian/Ubuntu:
``apt-get install xvfb xdotool x11-apps``; ``xwd`` only serves the debugging screenshot).

Two ways of sending keys, because OpenCV's Qt window (the opencv-python wheel) treats them
differently:

* ``xdotool key --window W k`` sends a synthetic event straight to the window. Fine for
  the one-letter commands, but a key that needs Shift never reaches ``cv2.waitKey``.
* ``xdotool windowfocus W`` then ``xdotool key/type`` without ``--window`` goes through
  XTEST, like a physical keyboard. Letters then arrive in lower case whatever Shift says
  (OpenCV's Qt backend), and nothing outside Latin-1 arrives at all, which is why names
  are typed in a small Tk dialog instead (``app.window.names``); xdotool types any Unicode text
  there. ``windowfocus`` works without a window manager; ``windowactivate`` does not.

Closing the window the way a window manager's close button does (a WM_DELETE_WINDOW
client message) is sent with libX11 through ctypes: ``xdotool windowclose`` destroys the
X window behind Qt's back, which no real desktop does, and ``windowkill`` cuts the app's
X connection, after which Qt ends the process at once (exit 1, unplayable mp4).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.lab.screenshots import read_xwd, virtual_screen
from app.outputs.sinks import WINDOW_TITLE
from app.people.gallery import Gallery
from app.window.name_dialog import TITLE as NAME_DIALOG_TITLE
from tests.conftest import REPO_ROOT, shared

_MISSING = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(bool(_MISSING), reason=f"{' and '.join(_MISSING)} not installed "
                       f"(apt-get install xvfb xdotool x11-apps) - no virtual screen for the "
                       f"OpenCV window"),
]

WINDOW_WAIT_S = 90.0     # model loading (TensorFlow) comes before the window opens
EXIT_WAIT_S = 10.0       # after q / closing / Ctrl-C
TYPE_DELAY_MS = 200      # between typed keys: cv2.waitKey keeps one key per frame


# -- the virtual screen --------------------------------------------------------------------
@pytest.fixture(scope="module")
def display(tmp_path_factory):
    """A fresh Xvfb on a free display number (``app.lab.screenshots.virtual_screen``)."""
    try:
        with virtual_screen(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as name:
            yield name
    except RuntimeError as exc:   # Xvfb did not start (pytest never throws into fixtures)
        pytest.fail(str(exc))


# -- the app -----------------------------------------------------------------------------
class App:
    """``run_video.py`` in a window on ``display``; stdout and stderr go to files."""

    def __init__(self, display: str, workdir: Path, source: Path, *args: str):
        self.display = display
        self.events = workdir / "events.jsonl"
        self.out_path, self.err_path = workdir / "app.out", workdir / "app.err"
        env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONUNBUFFERED="1")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "run_video.py"), "--source", str(source),
                 "--events", str(self.events), "--no-progress", *args],
                cwd=REPO_ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                # Ctrl-C must raise KeyboardInterrupt even when pytest runs where SIGINT
                # is ignored (a background job), which a child would otherwise inherit.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.window: str | None = None

    # output
    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def tail(self) -> str:
        err = [line for line in self.err_path.read_text(errors="replace").splitlines()
               if "XGetInputFocus" not in line]
        return (f"exit code {self.proc.poll()}\n--- stdout:\n{self.stdout[-2000:]}\n"
                f"--- stderr:\n" + "\n".join(err)[-2000:])

    def events_bytes(self) -> bytes:
        """The events so far: in the partial file while the run goes (app.outputs.files), then
        in the events file it is moved to."""
        partial = sorted(self.events.parent.glob(f"{self.events.stem}.partial-*.jsonl"))
        for path in (*partial, self.events):
            try:
                return path.read_bytes()
            except FileNotFoundError:
                continue
        return b""

    def event_lines(self) -> int:
        return self.events_bytes().count(b"\n")

    # waiting
    def wait_for(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                pytest.fail(f"the app ended while waiting for {what}\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f} s\n{self.tail()}")
            time.sleep(0.05)

    def wait_for_window(self) -> str:
        """The window's X id, once it is there."""
        def found() -> bool:
            ids = self.xdotool("search", "--name", f"^{WINDOW_TITLE}$").stdout.split()
            self.window = ids[0] if ids else None
            return self.window is not None
        self.wait_for(found, WINDOW_WAIT_S, f"window named {WINDOW_TITLE!r}")
        return self.window

    def wait_window(self) -> str:
        """The window's X id, once it is there and frames are flowing through it."""
        self.wait_for_window()
        self.wait_for(lambda: self.event_lines() >= 3, 30, "frames in the window")
        return self.window

    def quit_cleanly(self) -> None:
        """q, then the app must exit with status 0."""
        self.key("q")
        self.wait_exit()
        assert self.proc.returncode == 0, self.tail()

    def wait_exit(self, timeout: float = EXIT_WAIT_S) -> float:
        start = time.monotonic()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the app did not exit within {timeout:.0f} s\n{self.tail()}")
        return time.monotonic() - start

    # input
    def xdotool(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=20,
                              env={**os.environ, "DISPLAY": self.display})

    def key(self, *keys: str) -> None:
        """Synthetic key events straight to the window (one-letter commands)."""
        for key in keys:
            done = self.xdotool("key", "--window", self.window, key)
            assert done.returncode == 0, done.stderr
            time.sleep(0.15)

    def type_text(self, text: str, window: str | None = None) -> None:
        """Keys as from a keyboard (XTEST) into the focused window, at typing speed."""
        done = self.xdotool("windowfocus", "--sync", window or self.window)
        assert done.returncode == 0, done.stderr
        done = self.xdotool("type", "--delay", str(TYPE_DELAY_MS), text)
        assert done.returncode == 0, done.stderr

    def answer_name_dialog(self, name: str) -> None:
        """Type ``name`` into the enrolment's name dialog and press Enter."""
        found: list[str] = []

        def dialog() -> bool:
            found[:] = self.xdotool("search", "--name", f"^{NAME_DIALOG_TITLE}$").stdout.split()
            return bool(found)
        self.wait_for(dialog, 20, f"the {NAME_DIALOG_TITLE!r} dialog")
        time.sleep(0.3)
        self.type_text(name, found[0])
        done = self.xdotool("key", "Return")
        assert done.returncode == 0, done.stderr

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launch(display, tmp_path):
    apps: list[App] = []

    def start(source: Path, *args: str) -> App:
        app = App(display, tmp_path, source, *args)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.close()


@pytest.fixture(scope="module")
def still_video(tmp_path_factory) -> Path:
    """~20 s at 30 FPS of one portrait with a slight drift: a face that stays in view long
    enough to type a name (the Hamilton clip plays in ~3-4 s)."""
    image = cv2.imread(str(shared("video", "lin-manuel-miranda.png")), cv2.IMREAD_COLOR)
    assert image is not None
    height, width = image.shape[:2]
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    assert writer.isOpened()
    for i in range(600):
        shift = np.float32([[1, 0, 4 * math.sin(i / 7)], [0, 1, 3 * math.cos(i / 11)]])
        writer.write(cv2.warpAffine(image, shift, (width, height),
                                    borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def hamilton() -> Path:
    return shared("video", "short_hamilton_clip.mp4")


# -- tests -----------------------------------------------------------------------------------
def test_keys_help_landmarks_pause_resume_quit(launch, tmp_path):
    app = launch(hamilton(), "--gallery", str(tmp_path / "gallery.db"))
    app.wait_window()

    app.key("h")
    time.sleep(0.2)
    screenshot(app, tmp_path / "help.png")

    app.key("l")
    app.wait_for(lambda: "landmarks: dlib" in app.stdout, 5, "'landmarks: dlib' after l")

    app.key("space")
    time.sleep(0.4)  # the frame in hand when the key came is still written
    paused_at = app.event_lines()
    time.sleep(0.8)
    assert app.proc.poll() is None, f"the clip ended before it was paused\n{app.tail()}"
    assert app.event_lines() == paused_at, f"frames kept coming after space\n{app.tail()}"

    app.key("space")
    app.wait_for(lambda: app.event_lines() > paused_at, 5, "frames after space (resume)")

    app.key("q")
    took = app.wait_exit()
    out = app.stdout
    assert app.proc.returncode == 0, app.tail()
    assert took < EXIT_WAIT_S, f"{took:.1f} s to exit after q"
    assert "frames:" in out, app.tail()
    assert "stopped: quit" in out, f"q did not stop it (did the clip end first?)\n{app.tail()}"
    print(f"\n[gui] q -> exit in {took:.2f} s")


NAME = "José Łukasz O'Brien"


def test_live_enrolment_stores_the_name_exactly_as_typed(launch, tmp_path, still_video):
    pytest.importorskip("tkinter", reason="no Tk: names are typed in the OpenCV window, "
                        "which cannot take non-Latin-1 letters")
    gallery = tmp_path / "gallery.db"
    app = launch(still_video, "--gallery", str(gallery))
    app.wait_window()

    app.key("e")
    app.answer_name_dialog(NAME)  # capitals, accents, a Polish Ł, an apostrophe
    app.wait_for(lambda: "enrolled " in app.stdout or "enrolment" in app.stdout
                 and "cancelled" in app.stdout, 20, "the live enrolment to finish")
    assert f"enrolled {NAME} (5 samples)" in app.stdout, app.tail()

    app.quit_cleanly()
    assert "stopped: quit" in app.stdout, app.tail()

    listed = subprocess.run([sys.executable, "-m", "app", "people", "--gallery", str(gallery),
                             "list"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{NAME}\t5 sample(s)"], listed.stdout


def test_closing_the_window_finalises_video_and_events(launch, tmp_path, display):
    output = tmp_path / "annotated.mp4"
    app = launch(hamilton(), "--gallery", str(tmp_path / "gallery.db"), "--output", str(output))
    window = app.wait_window()
    app.wait_for(lambda: app.event_lines() >= 10, 10, "10 frames")

    problem = send_wm_delete_window(display, int(window))
    if problem:
        pytest.skip(f"cannot close the window like a window manager would: {problem} "
                    f"(test_ctrl_c_finalises_video_and_events covers the outputs)")
    app.wait_exit()
    assert app.proc.returncode == 0, app.tail()
    assert "stopped: window closed" in app.stdout, app.tail()
    assert_finalised(app, output)


def test_ctrl_c_finalises_video_and_events(launch, tmp_path):
    output = tmp_path / "annotated.mp4"
    app = launch(hamilton(), "--gallery", str(tmp_path / "gallery.db"), "--output", str(output))
    app.wait_window()
    app.wait_for(lambda: app.event_lines() >= 10, 10, "10 frames")

    app.proc.send_signal(signal.SIGINT)
    app.wait_exit()
    assert app.proc.returncode == 130, app.tail()   # 128 + SIGINT, as shells expect
    assert "stopped: interrupted (Ctrl-C)" in app.stdout, app.tail()
    assert_finalised(app, output)


def test_u_in_a_new_run_leaves_people_enrolled_before_intact(launch, tmp_path):
    gallery = tmp_path / "gallery.db"
    with Gallery(gallery) as g:  # enrolled before this run (by another model: no crop)
        g.add_samples("Ada Earlier", np.eye(1, 8, dtype=np.float32), "an-earlier-model")
    app = launch(hamilton(), "--gallery", str(gallery))
    app.wait_window()
    app.key("u", "u")
    app.wait_for(lambda: app.stdout.count("nothing to undo") == 2, 5, "two 'nothing to undo'")
    app.quit_cleanly()
    with Gallery(gallery) as g:
        assert [(p.name, p.samples) for p in g.people()] == [("Ada Earlier", 1)]


def test_a_video_plays_at_its_own_speed_and_stays_at_the_end(launch, tmp_path):
    capture = cv2.VideoCapture(str(hamilton()))
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    app = launch(hamilton(), "--gallery", str(tmp_path / "gallery.db"))
    app.wait_for(lambda: app.event_lines() >= 1, WINDOW_WAIT_S, "the first frame")
    start = time.monotonic()
    app.wait_for(lambda: app.event_lines() >= frames, 60, f"all {frames} frames")
    took = time.monotonic() - start
    print(f"\n[gui] {frames} frames at {fps:.2f} FPS played in {took:.2f} s")
    assert took >= 8.5, f"{frames / fps:.2f} s of video played in {took:.2f} s"
    time.sleep(1.5)
    assert app.proc.poll() is None, f"the window closed at the end of the video\n{app.tail()}"
    app.window = app.xdotool("search", "--name", f"^{WINDOW_TITLE}$").stdout.split()[0]
    app.key("q")
    app.wait_exit()
    assert app.proc.returncode == 0 and "stopped: quit" in app.stdout, app.tail()


def test_a_single_image_stays_until_q(launch, tmp_path):
    app = launch(shared("video", "lin-manuel-miranda.png"), "--gallery",
                 str(tmp_path / "gallery.db"))
    app.wait_for(lambda: app.event_lines() >= 1, WINDOW_WAIT_S, "the image's frame")
    app.window = app.wait_for_window()
    time.sleep(3)
    assert app.proc.poll() is None, f"the image was closed without q\n{app.tail()}"
    app.key("q")
    app.wait_exit()
    assert app.proc.returncode == 0 and "stopped: quit" in app.stdout, app.tail()


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory) -> Path:
    """One person in two shots: 16 frames on the original photo, then a cut to the same
    face smaller, elsewhere, on a light background (a new shot: a new track)."""
    image = cv2.imread(str(shared("video", "lin-manuel-miranda.png")), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    second = np.full_like(image, 200)
    small = cv2.resize(image, (width * 3 // 4, height * 3 // 4), interpolation=cv2.INTER_AREA)
    second[height - small.shape[0]:, width - small.shape[1]:] = small
    path = tmp_path_factory.mktemp("cut") / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for i in range(200):
        shot = image if i < 16 else second
        shift = np.float32([[1, 0, 3 * math.sin(i / 5)], [0, 1, 2 * math.cos(i / 7)]])
        writer.write(cv2.warpAffine(shot, shift, (width, height), borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def test_enrolment_of_the_person_on_screen_completes_across_a_cut(launch, tmp_path, cut_video):
    pytest.importorskip("tkinter", reason="no Tk for the name dialog")
    gallery = tmp_path / "gallery.db"
    app = launch(cut_video, "--gallery", str(gallery), "--speed", "0.25")
    app.wait_window()
    app.key("space")          # pause in the first shot and choose the face there
    time.sleep(0.5)
    shown = app.event_lines()
    assert shown < 14, f"the first shot was over before the test could pause ({shown} frames)"
    app.key("e")
    app.wait_for(lambda: "type the name" in app.stdout, 5, "the name question")
    app.key("space")
    app.answer_name_dialog(NAME)
    app.wait_for(lambda: "enrolled " in app.stdout or "timed out" in app.stdout
                 or "cancelled" in app.stdout, 40, "the live enrolment to finish")
    assert "enrolment follows the same person onto track" in app.stdout, app.tail()
    assert f"enrolled {NAME} (5 samples)" in app.stdout, app.tail()
    app.quit_cleanly()


def test_l_and_s_while_paused_redraw_the_points(launch, tmp_path, still_video):
    app = launch(still_video, "--gallery", str(tmp_path / "gallery.db"))
    app.wait_window()
    app.key("space")
    time.sleep(0.6)
    face = json.loads(app.events_bytes().splitlines()[-1])["faces"][0]["box"]
    x1, y1, x2, y2 = (int(v) for v in face)
    region = (slice(y1, y2), slice(x1, x2))
    cnn = screenshot(app, tmp_path / "paused-cnn.png")
    time.sleep(0.4)
    again = screenshot(app, tmp_path / "paused-cnn-again.png")
    assert np.array_equal(cnn[region], again[region]), "the paused picture changed by itself"
    app.key("l")
    time.sleep(0.6)
    dlib = screenshot(app, tmp_path / "paused-dlib.png")
    changed = np.mean(np.any(cnn[region] != dlib[region], axis=2))
    assert changed > 0.01, f"l while paused changed {changed:.1%} of the face's pixels"
    app.key("s")
    time.sleep(0.8)
    both = screenshot(app, tmp_path / "paused-side-by-side.png")
    assert both.shape[1] > cnn.shape[1], "s while paused did not show the two panels"
    app.quit_cleanly()


def test_first_switch_to_dlib_does_not_freeze_the_picture(launch, tmp_path, still_video):
    app = launch(still_video, "--gallery", str(tmp_path / "gallery.db"))
    app.wait_window()
    app.wait_for(lambda: app.event_lines() >= 30, 10, "30 frames")
    app.key("l")
    pressed = time.monotonic()
    arrivals, count = [pressed], app.event_lines()
    while time.monotonic() - pressed < 3.0:
        now_count = app.event_lines()
        if now_count != count:
            arrivals.append(time.monotonic())
            count = now_count
        time.sleep(0.005)
    assert "landmarks: dlib" in app.stdout, app.tail()
    gaps = np.diff(arrivals) * 1000
    print(f"\n[gui] after l: {len(gaps)} frames in 3 s, longest gap {gaps.max():.0f} ms")
    assert gaps.max() < 200, f"the picture froze for {gaps.max():.0f} ms after l"
    app.key("q")
    app.wait_exit()


# -- helpers -------------------------------------------------------------------------------
def assert_finalised(app: App, output: Path) -> None:
    """The events file ends with a summary that counts its frame lines, and the mp4 is
    playable with exactly that many frames (a file not finalised has no index)."""
    lines = app.events.read_text().splitlines()
    summary = json.loads(lines[-1]).get("summary")
    assert summary is not None, f"last events line is not a summary: {lines[-1][:200]}"
    frames = summary["frames"]
    assert 0 < frames == len(lines) - 1
    assert all("frame" in json.loads(line) for line in lines[:-1])
    assert "stopped:" in app.stdout and f"frames: {frames}" in app.stdout, app.tail()

    capture = cv2.VideoCapture(str(output))
    try:
        assert capture.isOpened(), f"{output} cannot be opened (not finalised?)"
        read = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            read += 1
            assert image.shape == (360, 640, 3)
    finally:
        capture.release()
    assert read == frames, f"{output}: {read} frames readable, {frames} processed"


def send_wm_delete_window(display: str, window: int) -> str | None:
    """What a window manager's close button sends (ICCCM WM_DELETE_WINDOW); None when sent,
    else why it could not be."""
    library = ctypes.util.find_library("X11")
    if not library:
        return "libX11 not found"
    x11 = ctypes.CDLL(library)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                               ctypes.c_void_p]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                    ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                    ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    connection = x11.XOpenDisplay(display.encode())
    if not connection:
        return f"XOpenDisplay({display}) failed"
    try:
        event = XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(connection, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
        if not x11.XSendEvent(connection, window, 0, 0, ctypes.byref(event)):
            return "XSendEvent failed"
        x11.XFlush(connection)
    finally:
        x11.XCloseDisplay(connection)
    return None


def screenshot(app: App, png: Path) -> np.ndarray | None:
    """``xwd -root`` of the screen, the window cut out (returned, and kept as a PNG;
    ImageMagick is not needed, XWD's ZPixmap is read here)."""
    if shutil.which("xwd") is None:
        pytest.skip("no xwd (apt-get install x11-apps): no screenshot to compare")
    xwd = png.with_suffix(".xwd")
    subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], timeout=20,
                   env={**os.environ, "DISPLAY": app.display}, check=True)
    try:
        image = read_xwd(xwd.read_bytes())
        geometry = dict(line.split("=", 1) for line in app.xdotool(
            "getwindowgeometry", "--shell", app.window).stdout.split())
        x, y = int(geometry["X"]), int(geometry["Y"])
        w, h = int(geometry["WIDTH"]), int(geometry["HEIGHT"])
        window = image[y:y + h, x:x + w]
        cv2.imwrite(str(png), window)
        print(f"\n[gui] screenshot: {png} ({w}x{h} window, pixel std {window.std():.0f})")
        return window
    except (KeyError, ValueError, struct.error) as exc:
        pytest.fail(f"screenshot kept as {xwd} (not converted: {exc})")


# -- issue 20, acceptance: the first e on a fresh install --------------------------------------
def test_a_fresh_home_enrols_with_e_and_the_next_run_names_him(launch, tmp_path, monkeypatch):
    """A new user: no gallery yet (a fresh HOME), the Hamilton clip at quarter speed, e on
    Lin-Manuel's close-up (frames 82-210), a typed name; the next run names him."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    app = launch(hamilton(), "--speed", "0.25")
    app.wait_window()
    app.wait_for(lambda: app.event_lines() >= 100, 60, "frame 100 (the close-up)")
    app.key("e")
    try:
        import tkinter  # noqa: F401 - the name is asked in a Tk dialog
        app.answer_name_dialog("Lin")
    except ImportError:   # typed into the OpenCV window
        app.type_text("Lin")
        app.key("Return")
    app.wait_for(lambda: "enrolled Lin" in app.stdout, 40, "the live enrolment to be stored")
    app.key("q")
    app.wait_exit()
    assert app.proc.returncode == 0, app.tail()
    assert list(home.rglob("gallery.sqlite3")), "no gallery under the fresh HOME"

    events = tmp_path / "second.jsonl"
    again = subprocess.run([sys.executable, "-m", "app", "run", "--headless", "--no-progress",
                            "--source", str(hamilton()), "--events", str(events)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert again.returncode == 0, again.stderr
    named = [json.loads(line)["frame"] for line in events.read_text().splitlines()
             if '"name":"Lin"' in line.replace(" ", "")]
    assert len([f for f in named if 82 <= f <= 210]) >= 60, named
