# One-command setup: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup models demo test verify clean

setup: $(STAMP) models

# Re-installs only when requirements.txt changes; a second `make setup` does nothing.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

# Builds only the model files that are missing (python -m models build is idempotent).
models: $(STAMP)
	$(PY) -m models build

# The webcam when one opens and a screen exists; else the 5-celebrity demo (out/demo/).
demo: setup
	$(PY) -m app demo

test: setup
	$(PY) -m pytest -q

verify: setup
	$(PY) -m models verify

clean:
	rm -rf $(VENV) models/facenet models/cache assets/demo out
