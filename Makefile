# Two entry points (see README): `make demo` runs the main job on embedded sample data,
# `make test` runs the test suite. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements

.PHONY: demo test install clean-venv

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python main.py --mode=demo --workdir=runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests -q -ra

clean-venv:
	rm -rf $(VENV)
