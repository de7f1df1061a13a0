"""The model toolchain: build, convert, export, train and verify every model file the app
uses (needs TensorFlow: ``pip install 'facelandmarks[toolchain]'``). It may use the
runtime and the lab; nothing in the runtime imports it."""
