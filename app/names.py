"""Asking for the name of a face being enrolled, exactly as the user types it.

OpenCV's Qt window (the opencv-python wheel) hands ``waitKey`` letters in lower case
whatever Shift says and drops anything outside Latin-1, so "José Łukasz O'Brien" cannot
be typed there. The name is therefore asked for where the keyboard works as everywhere
else, in this order:

* ``dialog``: a small Tk dialog, run as a child process (``python -m app.name_dialog``)
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
import subprocess
import sys
import threading

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
            self._proc = subprocess.Popen([sys.executable, "-m", "app.name_dialog"],
                                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        elif kind == "terminal":
            threading.Thread(target=self._ask_terminal, name="name-prompt", daemon=True).start()
        else:
            raise ValueError(f"unknown name input {kind!r}; expected dialog or terminal")

    @property
    def where(self) -> str:
        return "the dialog" if self.kind == "dialog" else "the terminal"

    def poll(self) -> str | None:
        """The name once given (None while waiting, or when cancelled)."""
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

    def _ask_terminal(self) -> None:
        try:
            name = input("\nname of the face being enrolled (Enter to confirm; empty "
                         "cancels): ")
        except (EOFError, OSError):
            name = ""
        if self.cancelled:
            return
        if name.strip():
            self._name = name
        else:
            self.cancelled = True


def typed_name_case(name: str) -> str:
    """A name typed in the OpenCV window, each word capitalised when it has no capital.

    Only for the ``window`` fallback: OpenCV's Qt window reports letter keys in lower case
    whatever Shift says, so "Test Person" typed there arrives as "test person". A name with
    any capital letter (another GUI backend) is kept as typed."""
    if name != name.lower():
        return name
    return " ".join(word[:1].upper() + word[1:] for word in name.split(" "))
