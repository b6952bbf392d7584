# Latchkey developer commands. `make dev` runs the local stack; `make test` runs every test.
# Both create the project's virtual environment in .venv/ and install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .dev/sam
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: dev test unit integration e2e lint sam-validate sam-build bench deps browser clean config-table admin-bootstrap

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.installed: tools/sam-requirements.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet -r tools/sam-requirements.txt
	touch $@

## dev: the local stack in the foreground (Ctrl-C stops it). ARGS="--store memory" / "--persist" / "--port N"
dev: deps
	$(BIN)/python -m devstack up $(ARGS)

## browser: Debian's chromium for the browser tests (Playwright drives it; nothing to do when it is on PATH)
browser:
	tools/install-chromium.sh

## test: the whole suite (unit, contract, integration on DynamoDB Local + Kafka mock, e2e, browser, SAM checks)
test: deps browser $(SAM_VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: deps
	$(BIN)/python -m pytest tests/unit tests/contract -m "not integration" $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check layers functions devstack tests bench cli

sam-validate: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam validate --lint

sam-build: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam build

config-table: deps
	$(BIN)/python -m devstack config-table

## admin-bootstrap: create the first admin client on the deployment the environment names (TABLE_NAME,
## AWS_REGION, KMS_KEY_ID, AWS credentials) and print its secret once. ARGS="--client-id ID --name NAME"
admin-bootstrap: deps
	$(BIN)/python -m latchkey.admin bootstrap $(ARGS)

bench: deps
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .pytest_cache
