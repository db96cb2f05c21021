# Set-up and everyday commands; every target creates .venv when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run label-demo test lint bench dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# Pinned so pip takes the builds this machine keeps on disk instead of downloading.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[gui,test,openvino,cluster]"
	touch $(STAMP)

run: $(STAMP)
	QT_QPA_PLATFORM= $(PY) -m fewshot_gui

label-demo: $(STAMP)
	$(PY) -m fewshot_gui.cli label --support resources/demo/examples \
		--images resources/demo/unlabeled --out demo-labels.csv

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py --data ../shared/data/omniglot/images_background

# The bundle takes its torch from a venv of its own: CPU-only by default, or
# `make dist DIST_VARIANT=cuda`; packaging/README.md says how to pick other torch builds.
DIST_VARIANT ?= cpu
DIST_TORCH_cpu ?= torch==2.13.0+cpu torchvision==0.28.0
DIST_TORCH_cuda ?= torch==2.14.1 torchvision==0.29.1
DIST_VENV := build/venv-$(DIST_VARIANT)

$(DIST_VENV)/.installed: pyproject.toml
	test -x $(DIST_VENV)/bin/python || python3 -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q $(DIST_TORCH_$(DIST_VARIANT))
	$(DIST_VENV)/bin/python -m pip install -q pyinstaller -e ".[gui]"
	touch $@

dist: $(STAMP) $(DIST_VENV)/.installed
	rm -rf dist/fewshot_gui-* dist/fewshot-$(DIST_VARIANT)
	$(PY) -m build --no-isolation --outdir dist .
	$(DIST_VENV)/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller \
		packaging/pyinstaller/fewshot.spec
	packaging/pyinstaller/smoke_test.sh dist/fewshot-$(DIST_VARIANT)
	du -sh dist/fewshot_gui-*.whl dist/fewshot-$(DIST_VARIANT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
