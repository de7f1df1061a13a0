"""``python -m app.window.name_dialog``: a small Tk dialog asking for a name; prints
``{"name": "..."}`` (ASCII JSON, so any script survives any locale) or ``{"name": null}``
when cancelled. Run as a child process by :class:`app.window.names.NameRequest`."""
from __future__ import annotations

import json
import sys

TITLE = "Enrol a face"


def main() -> int:
    import tkinter as tk
    from tkinter import simpledialog

    root = tk.Tk()
    root.withdraw()
    name = simpledialog.askstring(TITLE, "Name of the person being enrolled:", parent=root)
    root.destroy()
    sys.stdout.write(json.dumps({"name": name if name and name.strip() else None}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
