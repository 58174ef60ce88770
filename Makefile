# clv-lab: two commands do all the set-up on a fresh clone.
#   make reports   creates .venv if needed, installs, registers the `clv-lab` kernel,
#                  runs configs/cdnow.yaml and writes the HTML reports to reports/
#   make test      the same set-up if needed, then the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.clv-lab-installed
CONFIG ?= configs/cdnow.yaml

.PHONY: setup reports test lab notebooks lock clean mutate

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

# Mutation testing, on demand (not in CI): mutmut over the model, valuation and data modules
# ([tool.mutmut] in pyproject.toml: src/helpers/models.py or models/, value.py, data.py, and the tests
# that check them). MUTANTS narrows the run to mutmut name patterns, e.g.
#   make mutate MUTANTS='helpers.value.* helpers.data.*' MUTATE_PYTEST="-k 'not coverage'"
# MUTATE_PYTEST is handed to pytest (PYTEST_ADDOPTS). The survivors are listed at the end;
# `$(BIN)/mutmut show NAME` prints one, `$(BIN)/mutmut browse` all.
MUTANTS ?=
MUTATE_PYTEST ?=
MUTATE_JOBS ?= 2
mutate: setup
	rm -rf mutants
	PYTEST_ADDOPTS="$(MUTATE_PYTEST)" $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) reports/*/
