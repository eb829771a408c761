# Two commands do all the set-up themselves on a fresh machine:
#   make demo   the main job (writes runs/demo/)
#   make test   the test suite
VENV    ?= .venv
PYTHON  ?= python3
TORCH   ?= torch==2.13.0
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.jordanlab-installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,bench,tensorboard]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/jordanlab reproduce --quick --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/fill.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info
