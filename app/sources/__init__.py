"""Where frames come from: a camera (newest-frame slot), a video file (every frame), an
image, playback at a file's own rate, and detection ahead of the main loop."""
