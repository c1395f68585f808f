# cfx: two-command quickstart is `make run` then `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cfx-installed

.PHONY: install run test lint format lock docs bench clean system-deps preview

install: $(STAMP)

# Rebuilt only when the lock or the project metadata changed: seconds otherwise.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name cfx --display-name "Python (cfx)" >/dev/null
	touch $(STAMP)

run: install
	$(BIN)/cfx run --demo

lint: install
	$(BIN)/ruff check src tests bench notebooks
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench notebooks
	$(BIN)/ruff format src tests bench

# System packages pip cannot bring (a browser for the page checks, the age and minisign commands an
# investor uses on the data room, Java for Spark); installed with apt-get when missing and
# allowed, otherwise one line says which command to run, before any test starts.
TEST_SYSTEM_DEPS := chromium:/usr/bin/chromium fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf age:/usr/bin/age minisign:/usr/bin/minisign openjdk-17-jre-headless:/usr/bin/java redis-server:/usr/bin/redis-server

system-deps:
	@tools/system-deps $(TEST_SYSTEM_DEPS)

test: system-deps lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup --timeout 900 --durations=25

docs: install
	$(BIN)/cfx docs

bench: install
	$(BIN)/python bench/demo_data.py

# Re-resolve the lock from requirements.in in a scratch venv (needs the network to PyPI).
lock:
	rm -rf /tmp/cfx-lock && $(PYTHON) -m venv /tmp/cfx-lock
	/tmp/cfx-lock/bin/pip install --quiet -r requirements.in
	{ head -2 requirements.lock; /tmp/cfx-lock/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Edit the site's prose with the latest run's numbers: copies its artifacts and _variables.yml
# into the repository (both git-ignored), then `quarto preview` when Quarto is installed.
preview:
	@pub=$$(readlink -f "$${CFX_HOME:-$$HOME/.cfx}/published") && test -d "$$pub" || { echo "no publication yet: run 'make run' first"; exit 1; }; \
	run=$$(dirname "$$pub"); rm -rf reports/_artifacts; cp -r "$$run/artifacts" reports/_artifacts; \
	cp "$$run/artifacts/variables.yml" _variables.yml; \
	if command -v quarto >/dev/null; then quarto preview; else echo "reports/_artifacts and _variables.yml are ready; install Quarto (conda: environment.yml) for 'quarto preview'"; fi
