# EnMAP Compress — one-command environment, tests, demo and packaging.
# `make test` and `make demo` install what they need on a fresh Debian 12 machine (QGIS from apt when root,
# a venv with pinned Python packages) and reuse it when run again.
SHELL := /bin/bash
PY_SYS := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PLUGIN := enmap_compress
QGIS_PKGS := python3-qgis qgis qgis-providers xvfb python3-venv
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test demo lint package check-package install qgis venv clean bench-rd bench-speed

qgis:
	@if $(PY_SYS) -c 'import qgis.core, ensurepip' 2>/dev/null && [ -x /usr/bin/qgis_process.bin ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo ">> installing QGIS from Debian ($(QGIS_PKGS))"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(QGIS_PKGS) >/dev/null; \
	else \
	  echo "QGIS (PyQGIS and qgis_process) is missing. Install it, then run make again:"; \
	  echo "  sudo apt-get install -y --no-install-recommends $(QGIS_PKGS)"; exit 1; \
	fi
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | qgis
	@$(PY_SYS) -c 'import venv, ensurepip' 2>/dev/null || { echo "python3-venv is missing: sudo apt-get install -y python3-venv"; exit 1; }
	@[ -x $(PY) ] || $(PY_SYS) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: qgis $(STAMP)

test: venv
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) -m pytest -p no:cacheprovider --qgis_disable_gui tests

demo: venv
	$(PY) -m tools.demo

lint: venv
	$(PY) -m ruff check .

package: venv
	$(PY) tools/package.py

check-package: venv
	$(PY) tools/package.py --check

# make install INSTALL_ARGS="--profile NAME | --copy | --uninstall | --force"
install:
	$(PY_SYS) tools/install.py $(INSTALL_ARGS)

bench-rd: venv
	$(PY) -m bench.rate_distortion

bench-speed: venv
	$(PY) -m bench.speed

clean:
	rm -rf dist build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
