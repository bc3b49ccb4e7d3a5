# Neurotoken compute marketplace: every target sets itself up (idempotently) first.
#   make demo   - the main job: a local anvil chain, deploy, and a scripted run
#   make test   - the whole test suite on a real anvil node
#   make lint   - ruff, mypy, solhint, slither (through the solc wrapper)
#   make soak   - the fault campaigns (SOAK_SIZE); make fuzz - the deep property runs
#   make bench  - gas (and speed) figures, written to bench/results/
#   make web    - the web app against a recorded network (WEB_NETWORK, RPC_URL)

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
SOLCX_DIR := $(CURDIR)/.solcx
SOLC_VERSION = $(shell node -p "require('./node_modules/solc/package.json').version" 2>/dev/null)

export SOLCX_BINARY_PATH := $(SOLCX_DIR)
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Ape (and py-solc-x) must never reach for the network at run time.
export APE_DISABLE_TELEMETRY := 1
export PYTHONUNBUFFERED := 1
# Local nodes are on loopback: never route them through a proxy (this also spares
# `requests` a scan of the environment on every JSON-RPC call).
comma := ,
export no_proxy := 127.0.0.1,localhost$(if $(no_proxy),$(comma)$(no_proxy))
export NO_PROXY := $(no_proxy)

# The network `make test` and `make demo` run on: anvil from npm, through ape-foundry.
NETWORK ?= ethereum:local:foundry
TEST_ARGS ?=

.PHONY: setup demo test soak fuzz lint bench web sale-rehearsal clean distclean

setup: $(VENV)/.installed $(VENV)/.pth-ok node_modules/.installed $(SOLCX_DIR)/.installed \
	web/dist/index.html

$(VENV)/.installed: requirements.lock requirements-ray.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# --no-compile: bytecode is compiled on first import instead (set-up ~30 s faster).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.lock
	@# Ray for the provider's --backend ray: --no-deps, see requirements-ray.lock.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --no-deps -r requirements-ray.lock
	@# The project itself, editable, with its console scripts; every dependency comes from the
	@# lock. Built with the venv's own setuptools and this pinned wheel (pip freeze omits it).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check wheel==0.45.1
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# The repository's packages import from the checkout itself, and every interpreter of the
# venv runs _neurotoken_env.py at start-up (the local solc wrapper and anvil, no proxy for
# loopback): documented commands work from a fresh shell, outside make. Rewritten when the
# checkout has moved (the file names its absolute path).
PTH = $(shell $(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" 2>/dev/null)/neurotoken-checkout.pth
PTH_TEXT := $(CURDIR)\nimport _neurotoken_env

$(VENV)/.pth-ok: $(VENV)/.installed _neurotoken_env.py FORCE
	@test "$$(cat '$(PTH)' 2>/dev/null)" = "$$(printf '$(PTH_TEXT)')" || printf '$(PTH_TEXT)\n' > '$(PTH)'
	@touch $@

.PHONY: FORCE
FORCE:

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The web app (web/, its own lockfile): installed, type-checked and built into web/dist.
web/node_modules/.installed: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	@touch $@

WEB_SOURCES := $(wildcard web/src/*.ts web/src/*.css) web/index.html web/vite.config.ts web/tsconfig.json
web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build

$(SOLCX_DIR)/.installed: tools/solc/solc-native.js tools/solc/install.sh node_modules/.installed
	tools/solc/install.sh $(SOLCX_DIR)
	@touch $@

demo: setup
	$(BIN)/ape run demo --network $(NETWORK) -v WARNING

# Two lanes at once, each on its own anvil (tools/test_lanes.py): the oracle, run-book and demo
# tests mostly wait on blocks while the rest keep a core busy (the sale's join the first lane to
# even them). One lane: ape test tests ...
test: setup
	$(BIN)/python tools/test_lanes.py --network $(NETWORK) $(TEST_ARGS)

# The fault campaigns (tests marked `soak`: counted SIGKILLs of the oracles and the provider
# agent, RPC faults, reorgs, PostgreSQL and anvil restarts), each asserting it injected at
# least what it asked; SOAK_SIZE scales every count (1: the figures RELIABILITY.md states).
# `make fuzz`: every state machine at FUZZ_EXAMPLES x FUZZ_STEPS. Both end by writing
# RELIABILITY.md; neither is part of `make test`.
SOAK_SIZE ?= 1
FUZZ_EXAMPLES ?= 1000
FUZZ_STEPS ?= 50

soak: setup
	$(BIN)/python tools/prune_ape_nodes.py
	@# the campaigns read the ABIs from ape's build: a fresh clone has none before this
	$(BIN)/ape compile
	NEUROTOKEN_SOAK=1 NEUROTOKEN_SOAK_SIZE=$(SOAK_SIZE) \
		NEUROTOKEN_SOAK_COMMAND="make soak SOAK_SIZE=$(SOAK_SIZE)" \
		$(BIN)/ape test tests --network $(NETWORK) -m soak -p no:cacheprovider $(TEST_ARGS)
	$(BIN)/python tools/reliability.py

fuzz: setup
	NEUROTOKEN_FUZZ=1 NEUROTOKEN_STATEFUL_EXAMPLES=$(FUZZ_EXAMPLES) \
		NEUROTOKEN_STATEFUL_STEPS=$(FUZZ_STEPS) \
		NEUROTOKEN_SOAK_COMMAND="make fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_STEPS=$(FUZZ_STEPS)" \
		$(BIN)/python tools/test_lanes.py --network $(NETWORK) -p no:cacheprovider \
		-k "state_machine or hostile_provider_and_client" $(TEST_ARGS)
	$(BIN)/python tools/reliability.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/check_layers.py
	npx --no-install solhint --noPoster --disc --max-warnings 0 'contracts/**/*.sol'
	npx --no-install prettier --check 'contracts/**/*.sol'
	cd web && npx --no-install tsc --noEmit
	npx --no-install prettier --check 'web/src/**/*.{ts,css}' web/index.html
	$(BIN)/python tools/slither_check.py

# The presale rehearsal on the local Sepolia stand-in (anvil with chain id 11155111):
# 50 buyers, once to success and once under the soft cap, reconciled to the wei.
sale-rehearsal: setup
	$(BIN)/ape run sale -v WARNING simulate --buyers 50 --network $(NETWORK) --report sale-report.md

bench: setup
	$(BIN)/ape run bench --network $(NETWORK) -v WARNING

# The web app, served against a network recorded in deployments/<WEB_NETWORK>.json whose node
# answers at RPC_URL (the visitor's wallet must reach that node too).
WEB_NETWORK ?= ethereum-local
RPC_URL ?= http://127.0.0.1:8545
WEB_PORT ?= 5173
web: setup
	$(BIN)/python -m neurotoken.webapp serve --network $(WEB_NETWORK) --rpc-url $(RPC_URL) --port $(WEB_PORT)

clean:
	rm -rf .build bench/results/*.tmp .pytest_cache .mypy_cache .ruff_cache .hypothesis

distclean: clean
	rm -rf $(VENV) node_modules $(SOLCX_DIR)
