"""Asking for the name of a face being enrolled, exactly as the user types it.

OpenCV's Qt window (the opencv-python wheel) hands ``waitKey`` letters in lower case
whatever Shift says and drops anything outside Latin-1, so "José Łukasz O'Brien" cannot
be typed there. The name is therefore asked for where the keyboard works as everywhere
else, in this order:

* ``dialog``: a small Tk dialog, run as a child process (``python -m app.window.name_dialog``)
  so that Tk and OpenCV's Qt never share a process; the window keeps playing meanwhile.
* ``terminal``: a prompt on the terminal the app was started from (stdin is a TTY).
* ``window``: typed in the OpenCV window itself (no Tk, no terminal): letters arrive in
  lower case, so each word is capitalised (:func:`typed_name_case`).

A :class:`NameRequest` is polled once per loop turn: ``poll()`` returns the typed name
once there is one, ``cancelled`` says the user closed the dialog or gave nothing.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading

from ..paths import IMPORT_ROOT

NAME_INPUTS = ("auto", "dialog", "terminal", "window")


def choose_name_input(wanted: str = "auto") -> str:
    """The way names will be asked for (see module docstring)."""
    if wanted != "auto":
        return wanted
    if _display() and importlib.util.find_spec("tkinter") is not None:
        return "dialog"
    if sys.stdin is not None and sys.stdin.isatty():
        return "terminal"
    return "window"


def _display() -> bool:
    """An X11 display for Tk (unlike OpenCV's window, Tk needs X: XWayland sets DISPLAY)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY"))
    return True


class NameRequest:
    """One pending question "what is this person's name?" (dialog or terminal)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.cancelled = False
        self._name: str | None = None
        self._proc: subprocess.Popen | None = None
        if kind == "dialog":
            # cwd: the package imports from there whatever the user's folder
            self._proc = subprocess.Popen([sys.executable, "-m", f"{__package__}.name_dialog"],
                                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                          cwd=IMPORT_ROOT)
        elif kind == "terminal":
            self._lines = _TerminalLines.shared()
            self._lines.drain()  # lines typed before this question are not its answer
            print("\nname of the face being enrolled (Enter to confirm; empty cancels): ",
                  end="", flush=True)
        else:
            raise ValueError(f"unknown name input {kind!r}; expected dialog or terminal")

    @property
    def where(self) -> str:
        return "the dialog" if self.kind == "dialog" else "the terminal"

    def poll(self) -> str | None:
        """The name once given (None while waiting, or when cancelled)."""
        if self.kind == "terminal" and not self.cancelled and self._name is None:
            line = self._lines.next_line()
            if line is not None:
                self._name = line if line.strip() else None
                self.cancelled = self._name is None
        if self._proc is not None and self._proc.poll() is not None:
            out = self._proc.stdout.read()
            self._proc = None
            try:
                self._name = json.loads(out.decode("ascii") or "{}").get("name")
            except (ValueError, UnicodeDecodeError):
                self._name = None
            self.cancelled = self._name is None
        return self._name

    def cancel(self) -> None:
        self.cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(2)
        self._proc = None


class _TerminalLines:
    """Lines typed on the terminal, read by one thread for the whole process.

    A request that was cancelled (timed out, Esc) cannot take back a blocked ``input()``;
    with one reader feeding a queue, the next question gets the next line instead of a
    stale thread swallowing it. Reads the file descriptor directly (no buffered object
    that interpreter shutdown would wait on)."""

    _instance: "_TerminalLines | None" = None
    _lock = threading.Lock()

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self.ended = False
        threading.Thread(target=self._read, name="terminal-lines", daemon=True).start()

    @classmethod
    def shared(cls) -> "_TerminalLines":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def drain(self) -> None:
        while self.next_line() is not None:
            pass

    def next_line(self) -> str | None:
        """The next whole line, "" at the end of input, None when nothing is waiting."""
        if self.ended and self._queue.empty():
            return ""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(sys.stdin.fileno(), 4096)
            except (OSError, ValueError, AttributeError):
                chunk = b""
            if not chunk:
                self.ended = True
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._queue.put(line.decode("utf-8", "replace").rstrip("\r"))


def typed_name_case(name: str) -> str:
    """A name typed in the OpenCV window, each word capitalised when it has no capital.

    Only for the ``window`` fallback: OpenCV's Qt window reports letter keys in lower case
    whatever Shift says, so "Test Person" typed there arrives as "test person". A name with
    any capital letter (another GUI backend) is kept as typed."""
    if name != name.lower():
        return name
    return " ".join(word[:1].upper() + word[1:] for word in name.split(" "))
