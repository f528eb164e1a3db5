# Two entry points (see README): `make demo` runs the main job on embedded sample data,
# `make test` runs the test suite. Each installs what it needs into .venv first (`make test` also runs
# `npm ci` in web/ and installs Debian's chromium + chromium-driver when they are missing, for tests/web).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements
# The web page's npm packages (web/package-lock.json) and, for its browser tests, Debian's Chromium.
WEB_STAMP := web/node_modules/.installed-lock
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q

.PHONY: demo demo-web test test-fast install clean-venv web browser

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python main.py --mode=demo --workdir=runs/demo

# Two pytest worker processes (pytest-xdist), each taking whole files (module fixtures such as exports are built once).
test: $(STAMP) $(WEB_STAMP) browser
	$(BIN)/python -m pytest tests -q -ra -n 2 --dist loadfile

# After `make demo`: the demo's model exported for LiteRT and opened in the browser page (Ctrl-C stops the server).
demo-web: $(STAMP) $(WEB_STAMP)
	$(BIN)/python main.py --mode=export --format=litert --model_dir=runs/demo/train/model --export_dir=runs/demo/litert --overwrite
	$(BIN)/python main.py --mode=web --model=runs/demo/litert/ifan-t512-float32.tflite

# The inner loop: everything but the end-to-end tests marked slow (the browser tests need `make web browser`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -ra -n 2 --dist loadfile -m "not slow"

# `npm ci` in web/: LiteRT.js for the page (main.py --mode=web serves its wasm from web/node_modules).
web: $(WEB_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	command -v npm >/dev/null || ($(SUDO) apt-get update -q && $(APT_INSTALL) nodejs npm)
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

# Chromium and ChromeDriver from Debian for tests/web (installed only when missing).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
		$(SUDO) apt-get update -q && $(APT_INSTALL) chromium chromium-driver; \
	fi

clean-venv:
	rm -rf $(VENV)
