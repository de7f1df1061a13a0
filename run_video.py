#!/usr/bin/env python3
"""Run the face pipeline on a camera, video file or image: same as ``python -m app run``.

    python run_video.py --source 0
    python run_video.py --source clip.mp4 --headless --events out.jsonl --output out.mp4
"""
import sys

from app.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main())
