"""The model files (built here by ``python -m models build``) and their notes; the toolchain
that builds them is ``app.toolchain`` (this package only keeps ``python -m models`` working)."""
