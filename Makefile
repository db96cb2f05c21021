# Set-up and everyday commands; every target creates .venv when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run label-demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# Pinned so pip takes the builds this machine keeps on disk instead of downloading.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[gui,test]"
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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
