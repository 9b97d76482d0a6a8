PYTHON ?= python

.PHONY: install test test-all bench train clean

install:  ## fishbear, its dependencies (torch, torchvision, Lightning, Hydra...) and the test tools
	$(PYTHON) -m pip install -e ".[dev]"

test:  ## the fast suite (under 5 minutes on 2 cores)
	$(PYTHON) -m pytest -m "not slow" -q

test-all:  ## everything, including full training runs and tests on ../shared/data
	$(PYTHON) -m pytest -q

bench:  ## fishbear's overhead against a plain PyTorch loop, same model, data and steps
	$(PYTHON) benchmarks/overhead.py

train:  ## the default experiment: ConvNet on the embedded shapes data
	$(PYTHON) -m fishbear.train

clean:
	rm -rf outputs .pytest_cache
