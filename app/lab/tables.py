"""Markdown tables: the one writer behind every table the lab and the toolchain print."""
from __future__ import annotations

from typing import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]],
                   align: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table. ``align`` holds one of "", ":" (right) per column."""
    marks = ["---" + (a or "") for a in (align or [""] * len(header))]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(marks) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
