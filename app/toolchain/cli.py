"""``python -m models <command> [args]`` / ``facelandmarks models <command>``: the model
toolchain's entry point.

Each command lives in its own module with a ``main(argv) -> int``; modules are
imported only when their command runs, so ``--help`` stays fast.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train_landmarks": (".train_landmarks", "fine-tune the landmark CNN on 300-W train and export it"),
    "build": (".build", "build every missing model file (FaceNet .tflite variants, ...)"),
    "verify": (".verify", "check every model against its source; write models/REPORT.md"),
    "export_cnn68": (".cnn68", "rebuild the landmark CNN from face-api.js weights and export it"),
}


def usage(prog: str = "python -m models") -> str:
    lines = [f"usage: {prog} <command> [args]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str], prog: str = "python -m models") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog))
        return 0
    if argv[0] not in COMMANDS:
        print(f"unknown command {argv[0]!r}\n\n{usage(prog)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0], __package__)
    return module.main(argv[1:])

