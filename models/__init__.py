"""Model toolchain: build, convert, export and verify every model file the app uses."""
