# actionbox — two commands on a fresh machine (Debian + Rust stable):
#   make demo   build everything, start the ShipStation simulator, track a sample order
#   make test   lint (fmt + clippy -D warnings) and run every test
#
# All native crates and the wasm guest share one target/ directory, and tests
# run in the release profile so the wasmtime build is done once.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip2
COMPONENT    := target/$(WASM_TARGET)/release/shipstation.wasm
ACTIONBOX    := target/release/actionbox
SIMULATOR    := target/release/shipstation-sim
SIM_KEY      := TEST_actionbox_simulator_key
ORDER        ?= 1001

# The end-to-end tests load the components this Makefile builds (target/...):
# tests/e2e/build.rs builds its own only for a plain `cargo test`.
export ACTIONBOX_PREBUILT_COMPONENTS := 1

.PHONY: all setup build component test-components host demo test lint fmt fuzz pyenv bench clean help postgres \
	jco inspect demo-jco python-action browser axe

# A virtualenv with the Python packages the tests drive actionbox with: the
# MCP client (tests/e2e/mcp) and Selenium for the console's browser test
# (tests/e2e/console). The stamp is named after the pins, so changing one
# re-runs the install. (selenium 4.52.0 needs a certifi newer than the
# registry serves here, so 4.51.0.)
PYENV        := target/pyenv
MCP_PY_PIN   := mcp==2.3.0
SELENIUM_PIN := selenium==4.51.0
PYENV_PINS   := $(MCP_PY_PIN) $(SELENIUM_PIN)
empty        :=
space        := $(empty) $(empty)
PYENV_STAMP  := $(PYENV)/.installed-$(subst $(space),_,$(subst ==,-,$(PYENV_PINS)))

# The console's browser test: Debian's headless Chromium and its WebDriver,
# and axe-core (the accessibility checker it injects into every page).
BROWSER_PKGS := chromium chromium-driver
AXE_CORE     := 4.14.1
AXE_DIR      := target/axe-core
AXE_STAMP    := $(AXE_DIR)/.installed-$(AXE_CORE)

# Portability (tests/jco): the same component under jco in Node.js, and the
# `inspect` target. Versions are pinned by tests/jco/package-lock.json.
JCO_DIR      := tests/jco
JCO          := $(JCO_DIR)/node_modules/.bin/jco
JCO_STAMP    := $(JCO_DIR)/node_modules/.installed
JCO_OUT      := target/jco/shipstation

# The second-language action (tests/python-action): Python, componentize-py.
PY_ACTION_ENV   := target/pyenv-componentize
COMPONENTIZE_PY := 0.25.1
PYTHON_ACTION   := target/python-action/order_status.wasm

# Seconds each fuzz target runs under `make fuzz`.
FUZZ_SECONDS ?= 60

all: build

help:
	@echo "make demo    build, start the simulator on 127.0.0.1, track order $(ORDER), stop it"
	@echo "make test    fmt check, clippy -D warnings, all unit and end-to-end tests"
	@echo "make build   $(COMPONENT) and $(ACTIONBOX)"
	@echo "make lint    fmt check and clippy only"
	@echo "make inspect print the component's WIT world (imports and exports) with jco"
	@echo "make demo-jco  make demo with Node.js (jco) as the host instead of actionbox"
	@echo "make edge    the action as one wasi:http/proxy component (guest/edge) -> target/edge/"
	@echo "make edge-wit  print that component's world"
	@echo "make bench   benchmarks next to their native baselines -> BENCHMARKS.md (about 5 min)"
	@echo "make fuzz    cargo-fuzz targets on nightly, $(FUZZ_SECONDS) s each (FUZZ_SECONDS=…)"
	@echo "make authoring  docs/write-your-first-action.md run as written, and the three \`actionbox new\` templates tested"
	@echo "make wit-package  the contract as a standalone WIT package -> target/wit/"

# The only toolchain piece not in a stock Rust install.
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

# The ShipStation action and the hostile test component (tests/hostile-guest),
# built for size: fat LTO, opt-level z and one codegen unit for every crate
# they contain. Set through the environment so only these wasm builds see it.
GUEST_PROFILE := CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
WASM_DIR          := target/$(WASM_TARGET)/release
HOSTILE_OUT       := target/hostile-guest
HOSTILE_MANIFESTS := target/hostile-manifests
# One attack per cargo feature of tests/hostile-manifest (its [features] table is
# the list; tests/e2e/build.rs reads the same table).
HOSTILE_MANIFEST_VARIANTS := $(shell sed -n '/^\[features\]/,/^\[/{s/^\([a-z0-9-]*\) *= *\[\].*/\1/p}' tests/hostile-manifest/Cargo.toml)

component: setup
	$(GUEST_PROFILE) $(CARGO) build --release -p shipstation -p hostile-guest --target $(WASM_TARGET)

# The attack components only the tests need (not `make demo`):
#   tests/hostile-guest     with a second memory plugged in (its grower.wat, wac) for
#                           `multi-memory` -> $(HOSTILE_OUT)/hostile_two_memories.wasm
#   tests/hostile-manifest  one hostile `describe` per cargo feature -> $(HOSTILE_MANIFESTS)/<feature>.wasm
#                           (default.wasm: none, a valid manifest); each is rebuilt only when
#                           its sources changed, since the variants share one cargo output file.
#   tests/legacy-action     an action built against the old 0.1.0 contract, which hosts refuse
#                           at load -> target/legacy-action/legacy_action_0_1_0.wasm
# Built after `component`, whose plain hostile_guest.wasm is copied back last.
test-components: component edge-tools
	@set -e; out=$(HOSTILE_OUT)/hostile_two_memories.wasm; \
	if [ ! -f $$out ] || [ -n "$$(find tests/hostile-guest wit Cargo.lock -newer $$out -type f | head -n1)" ]; then \
		echo "$(CARGO) build --release -p hostile-guest --features two-memories --target $(WASM_TARGET)"; \
		$(GUEST_PROFILE) $(CARGO) build --release -p hostile-guest --features two-memories --target $(WASM_TARGET); \
		mkdir -p $(HOSTILE_OUT); \
		cp $(WASM_DIR)/hostile_guest.wasm $(HOSTILE_OUT)/hostile_two_memories_socket.wasm; \
		$(EDGE_WASM_TOOLS) parse tests/hostile-guest/grower.wat -o $(HOSTILE_OUT)/grower.wasm; \
		echo "wac plug --plug grower.wasm hostile_two_memories_socket.wasm -o $$out"; \
		$(EDGE_WAC) plug --plug $(HOSTILE_OUT)/grower.wasm $(HOSTILE_OUT)/hostile_two_memories_socket.wasm -o $$out; \
		$(GUEST_PROFILE) $(CARGO) build --release -p hostile-guest --target $(WASM_TARGET); \
	fi
	@mkdir -p $(HOSTILE_MANIFESTS)
	@set -e; for v in default $(HOSTILE_MANIFEST_VARIANTS); do \
		out=$(HOSTILE_MANIFESTS)/$$v.wasm; \
		if [ -f $$out ] && [ -z "$$(find tests/hostile-manifest wit Cargo.lock -newer $$out -type f | head -n1)" ]; then continue; fi; \
		features=$$([ $$v = default ] || echo "--features $$v"); \
		echo "$(CARGO) build --release -p hostile-manifest $$features --target $(WASM_TARGET)"; \
		$(GUEST_PROFILE) $(CARGO) build --quiet --release -p hostile-manifest $$features --target $(WASM_TARGET); \
		cp $(WASM_DIR)/hostile_manifest.wasm $$out; \
	done
	@set -e; out=target/legacy-action/legacy_action_0_1_0.wasm; \
	if [ ! -f $$out ] || [ -n "$$(find tests/legacy-action wit/deps Cargo.lock -newer $$out -type f | head -n1)" ]; then \
		echo "$(CARGO) build --release -p legacy-action --target $(WASM_TARGET)"; \
		$(GUEST_PROFILE) $(CARGO) build --release -p legacy-action --target $(WASM_TARGET); \
		mkdir -p $$(dirname $$out); \
		cp $(WASM_DIR)/legacy_action.wasm $$out; \
	fi

# edge-serve (tests/edge-serve) is built with the host so wasmtime's features
# unify and it is compiled once for both.
host:
	$(CARGO) build --release -p actionbox -p shipstation-sim -p edge-serve

build: component host
	@ls -l $(COMPONENT) $(ACTIONBOX)

demo: build
	@set -e; dir=$$(mktemp -d); \
	$(SIMULATOR) --url-file $$dir/url --api-key $(SIM_KEY) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; rm -rf $$dir' EXIT INT TERM; \
	for i in $$(seq 1 100); do [ -s $$dir/url ] && break; sleep 0.1; done; \
	url=$$(cat $$dir/url); \
	echo; echo "== simulator at $$url"; \
	echo "== actionbox test-connection (the integration's Test button)"; \
	SHIPSTATION_API_KEY=$(SIM_KEY) $(ACTIONBOX) test-connection $(COMPONENT) --base-url $$url; \
	echo "== actionbox run $(COMPONENT) trackOrder --input '{\"order_id\":\"$(ORDER)\"}'"; \
	SHIPSTATION_API_KEY=$(SIM_KEY) $(ACTIONBOX) run $(COMPONENT) trackOrder \
		--input '{"order_id":"$(ORDER)"}' --base-url $$url

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release -p shipstation -p actionbox-guest -p hostile-guest -p hostile-manifest -p legacy-action --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy --release -p hostile-guest --features two-memories --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy --release -p actionbox-bench --all-targets -- -D warnings
	$(CARGO) clippy --release -p edge-gateway -p edge-adapter -p edge-cli-stubs -p edge-probe --target $(WASM_TARGET) -- -D warnings

# Python's `mcp` package (an MCP client this project did not write) and
# Selenium (WebDriver for the console test), exactly as pinned.
pyenv: $(PYENV_STAMP)
$(PYENV_STAMP):
	@command -v python3 >/dev/null || { echo "make test needs python3 (apt-get install python3 python3-venv)"; exit 1; }
	@[ -x $(PYENV)/bin/pip ] || python3 -m venv $(PYENV) || { rm -rf $(PYENV); apt-get install -y python3-venv && python3 -m venv $(PYENV); }
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check $(foreach p,$(PYENV_PINS),'$(p)')
	rm -f $(PYENV)/.installed*
	touch $@

# Headless Chromium and chromedriver from Debian (the console's browser
# test), installed when either is missing. Debian builds them together, so
# the driver always matches the browser.
browser:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || apt-get install -y $(BROWSER_PKGS) \
		|| { apt-get update && apt-get install -y $(BROWSER_PKGS); }

# axe-core from npm, exactly as pinned: target/axe-core/node_modules/axe-core/axe.min.js.
axe: $(AXE_STAMP)
$(AXE_STAMP):
	@command -v npm >/dev/null || { echo "make test needs Node.js >= 20 with npm (e.g. apt-get install nodejs npm)"; exit 1; }
	rm -rf $(AXE_DIR) && mkdir -p $(AXE_DIR)
	npm install --prefix $(AXE_DIR) --no-audit --no-fund --no-package-lock --save-exact 'axe-core@$(AXE_CORE)'
	touch $@

# ACTIONBOX_REQUIRE_ALL_TESTS: a test whose Node.js/Python/wac prerequisite is
# missing fails here instead of skipping as it does under a plain `cargo test`.
test: build test-components lint pyenv jco python-action edge postgres browser axe
	ACTIONBOX_REQUIRE_ALL_TESTS=1 $(CARGO) test --release
	$(MAKE) --no-print-directory edge-test
	$(MAKE) --no-print-directory authoring

# The author kit (docs/write-your-first-action.md), in target/authoring/:
#   walkthrough/   the doc's ```sh {test} blocks run as written, in order (a Rust project:
#                  new, make, make test, check, replay, record against a stand-in, serve)
#   python/, javascript/   `actionbox new` in that language, then the project's own `make test`
# plus the contract as a standalone WIT package ($(WIT_PACKAGE)). Rust builds share
# one cargo target dir; an unchanged Python or JavaScript project is not rebuilt
# (tests/authoring/template.sh). The Python project uses the componentize-py the
# Python action uses; its own Makefile pins the same version (checked here).
# Cost on 2 shared cores: about 2 min from a clean target/ (walkthrough 42 s, Python
# 28 s, JavaScript 41 s: the two big components' first compilation is most of it),
# about 10 s when the templates are unchanged.
AUTHORING     := target/authoring
AUTHORING_ENV := ACTIONBOX=$(abspath $(ACTIONBOX)) CARGO_TARGET_DIR=$(abspath $(AUTHORING)/cargo-target)
WIT_VERSION   := $(shell sed -n 's/^package actionbox:action@\(.*\);$$/\1/p' wit/world.wit)
WIT_PACKAGE   := target/wit/actionbox-action-$(WIT_VERSION).wasm

.PHONY: authoring wit-package
authoring: host setup wit-package $(PY_ACTION_ENV)/.installed-$(COMPONENTIZE_PY)
	@grep -qx 'COMPONENTIZE_PY_VERSION *:= *$(COMPONENTIZE_PY)' host/templates/python/Makefile || \
		{ echo "host/templates/python/Makefile must pin componentize-py $(COMPONENTIZE_PY), as this Makefile does"; exit 1; }
	$(AUTHORING_ENV) tests/authoring/walkthrough.sh docs/write-your-first-action.md $(AUTHORING)/walkthrough
	$(AUTHORING_ENV) tests/authoring/template.sh python $(AUTHORING)/python \
		COMPONENTIZE_PY=$(abspath $(PY_ACTION_ENV)/bin/componentize-py)
	@command -v npm >/dev/null || { echo "make test needs Node.js >= 20 with npm (e.g. apt-get install nodejs npm)"; exit 1; }
	$(AUTHORING_ENV) tests/authoring/template.sh javascript $(AUTHORING)/javascript

# The contract as a standalone WIT package (a component holding only types), for
# toolchains that take one instead of wit/ (`wasm-tools component wit FILE` prints it).
wit-package: edge-tools
	@mkdir -p $(dir $(WIT_PACKAGE))
	$(EDGE_WASM_TOOLS) component wit --wasm wit -o $(WIT_PACKAGE)
	@$(EDGE_WASM_TOOLS) component wit $(WIT_PACKAGE) | grep -qx 'package actionbox:action@$(WIT_VERSION);' || \
		{ echo "$(WIT_PACKAGE) does not hold package actionbox:action@$(WIT_VERSION)"; exit 1; }
	@ls -l $(WIT_PACKAGE)

# PostgreSQL for the store's tests: they start their own throwaway cluster
# (tests/pgcluster) on loopback, so only the server's binaries are needed.
POSTGRES_PKG := postgresql-15
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt-get install -y $(POSTGRES_PKG) \
		|| { apt-get update && apt-get install -y $(POSTGRES_PKG); }

# jco and preview2-shim, exactly as package-lock.json pins them.
$(JCO_STAMP): $(JCO_DIR)/package.json $(JCO_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs Node.js >= 20 with npm (e.g. apt-get install nodejs npm)"; exit 1; }
	cd $(JCO_DIR) && npm ci --no-audit --no-fund
	touch $@

# The unmodified component, transpiled to JS + core wasm for tests/jco/host.mjs
# (about 1 s, so always redone: it can never be stale).
jco: component $(JCO_STAMP)
	rm -rf $(JCO_OUT)
	$(JCO) transpile $(COMPONENT) -o $(JCO_OUT) --name shipstation --instantiation sync --quiet

# The component's WIT world: every import and export (standard tooling: jco wit).
inspect: component $(JCO_STAMP)
	@$(JCO) wit $(COMPONENT)

# make demo, with Node.js as the host (only the simulator is built in Rust).
demo-jco: jco
	$(CARGO) build --release -p shipstation-sim
	@set -e; dir=$$(mktemp -d); \
	$(SIMULATOR) --url-file $$dir/url --api-key $(SIM_KEY) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; rm -rf $$dir' EXIT INT TERM; \
	for i in $$(seq 1 100); do [ -s $$dir/url ] && break; sleep 0.1; done; \
	url=$$(cat $$dir/url); \
	echo "== node $(JCO_DIR)/host.mjs test-connection (the integration's Test button)"; \
	SHIPSTATION_API_KEY=$(SIM_KEY) node $(JCO_DIR)/host.mjs test-connection --base-url $$url; \
	echo "== node $(JCO_DIR)/host.mjs run trackOrder --input '{\"order_id\":\"$(ORDER)\"}'"; \
	SHIPSTATION_API_KEY=$(SIM_KEY) node $(JCO_DIR)/host.mjs run trackOrder \
		--input '{"order_id":"$(ORDER)"}' --base-url $$url

# The Python orderStatus action: the same wit/ world, built with componentize-py.
python-action: $(PYTHON_ACTION)

$(PY_ACTION_ENV)/.installed-$(COMPONENTIZE_PY):
	@command -v python3 >/dev/null || { echo "the Python action needs python3 (apt-get install python3 python3-venv)"; exit 1; }
	python3 -m venv $(PY_ACTION_ENV) || { rm -rf $(PY_ACTION_ENV); apt-get install -y python3-venv && python3 -m venv $(PY_ACTION_ENV); }
	$(PY_ACTION_ENV)/bin/pip install --quiet --disable-pip-version-check 'componentize-py==$(COMPONENTIZE_PY)'
	touch $@

$(PYTHON_ACTION): $(PY_ACTION_ENV)/.installed-$(COMPONENTIZE_PY) $(wildcard tests/python-action/*.py) $(shell find wit -name '*.wit')
	@mkdir -p $(dir $@)
	$(PY_ACTION_ENV)/bin/componentize-py -d wit -w smart-action componentize \
		--python-path tests/python-action order_status -o $@

fmt:
	$(CARGO) fmt --all

# Benchmarks (tests/bench): criterion micro-benchmarks, then whole-process
# measurements with wrk as the load generator; writes BENCHMARKS.md. Not part
# of `make test`: nothing here is asserted.
bench: build
	@command -v wrk >/dev/null || apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
	$(CARGO) build --release -p actionbox-bench --bins
	rm -rf target/bench/raw
	$(CARGO) bench -p actionbox-bench --bench sandbox
	target/release/bench-report
	target/release/workspace-bench

# cargo-fuzz on the nightly toolchain (not part of `make test` / CI).
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd tests/fuzz && for t in upstream_responses order_input base_url; do \
		cargo +nightly fuzz run --fuzz-dir . $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean

# The edge build: edge-tools, edge, edge-wit, edge-test (guest/edge/README.md).
include tests/edge/edge.mk
