"""Where results go: events (JSON lines), the annotated video, and the output files that
never clobber an input (partial file + rename)."""
