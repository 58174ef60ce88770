# clv-lab: two commands do all the set-up on a fresh clone.
#   make reports   creates .venv if needed, installs, registers the `clv-lab` kernel,
#                  runs configs/cdnow.yaml and writes the HTML reports to reports/
#   make test      the same set-up if needed, then the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.clv-lab-installed
CONFIG ?= configs/cdnow.yaml

.PHONY: setup reports test lab notebooks lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name clv-lab --display-name "Python (clv-lab)"
	touch $(STAMP)

reports: setup
	$(BIN)/clv-lab run $(CONFIG)

test: setup
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/jupyter lab notebooks/

# Re-execute the committed notebooks in place on the default configuration, so that
# they carry the outputs a reader should see (nbval in `make test` checks they are current).
notebooks: setup
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.kernel_name=clv-lab --ExecutePreprocessor.timeout=900 \
	  --ExecutePreprocessor.record_timing=False notebooks/*.ipynb

# Refresh the pinned versions after changing pyproject.toml's bounds.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^clv-lab' > requirements.lock

clean:
	rm -rf $(VENV) reports/*/
