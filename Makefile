PYTHON ?= python

.PHONY: install test test-slow test-all lint docs bench train doctor lock clean

install:  ## fishbear and the exact tested set of its dependencies (requirements.lock) and test tools
	$(PYTHON) -m pip install -c requirements.lock -e ".[dev]"

test:  ## the fast suite, one worker per core and a thread each (pytest-xdist; 2:35-4:36 on fresh clones, 2 cores)
	$(PYTHON) -m pytest -m "not slow" -q -n auto --maxprocesses=4 --durations=10

test-slow:  ## the slow suite: the full default run, the benchmarks' smoke runs, real data in ../shared/data (`pytest -m timing` runs the three timing tests alone, for figures to quote)
	$(PYTHON) -m pytest -m slow -q -n auto --maxprocesses=4 --durations=15

test-all:  ## both suites in one run
	$(PYTHON) -m pytest -q

lint:  ## ruff: lint and import order (CI runs it before the tests)
	$(PYTHON) -m ruff check .

docs:  ## the docs site into site/ (mkdocs-material; warnings are errors)
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

bench:  ## fishbear's overhead against a plain PyTorch loop, same model, data and steps
	$(PYTHON) benchmarks/overhead.py

train:  ## the default experiment: ConvNet on the embedded shapes data
	$(PYTHON) -m fishbear train

doctor:  ## versions, device, caches: what a bug report needs
	$(PYTHON) -m fishbear doctor

lock:  ## regenerate requirements.lock from pyproject.toml's ranges (torch pair: tools/lock.py)
	$(PYTHON) tools/lock.py

clean:
	rm -rf outputs .pytest_cache site
