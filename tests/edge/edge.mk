# The edge build (guest/edge/README.md): the unmodified ShipStation action
# (actionbox:action@0.2.0) plugged with `wac plug` into a gateway, an adapter
# and cli stubs: ONE wasi:http/proxy component (+ wasi:config/store),
# target/edge/edge-shipstation.wasm. Included from the Makefile (after its
# variables):
#
#   make edge-tools   wasm-tools + wac-cli, pinned, into target/tools/bin (skipped when present at that version)
#   make edge         build the three edge components (guest profile) and compose -> $(EDGE_COMPOSED)
#   make edge-wit     print the composed component's world (what it imports and exports)
#   make edge-test    what compose.sh refuses; edge-serve and jco serve vs `actionbox run` on the simulator;
#                     the probe policy checks on both runtimes
#
# Uses the Makefile's CARGO, WASM_TARGET, COMPONENT, ACTIONBOX, SIMULATOR,
# GUEST_PROFILE, JCO and JCO_STAMP (the defaults below only matter if this file
# is included before they are defined).

# Wherever this file is included, it must not become the default goal.
EDGE_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

CARGO         ?= cargo
WASM_TARGET   ?= wasm32-wasip2
COMPONENT     ?= target/$(WASM_TARGET)/release/shipstation.wasm
ACTIONBOX     ?= target/release/actionbox
SIMULATOR     ?= target/release/shipstation-sim
JCO           ?= tests/jco/node_modules/.bin/jco
JCO_STAMP     ?= tests/jco/node_modules/.installed

EDGE_OUT      := target/edge
EDGE_COMPOSED := $(EDGE_OUT)/edge-shipstation.wasm
EDGE_PROBE    := $(EDGE_OUT)/edge-probe.wasm
EDGE_WASM_DIR := target/$(WASM_TARGET)/release
EDGE_SERVE    := target/release/edge-serve
EDGE_TOOLS    := target/tools
EDGE_WASM_TOOLS := $(EDGE_TOOLS)/bin/wasm-tools
EDGE_WAC      := $(EDGE_TOOLS)/bin/wac
EDGE_WASM_TOOLS_VERSION := 1.263.0
EDGE_WAC_VERSION        := 0.12.0
# Only the subcommands compose.sh uses (component wit, validate): a fraction of the default build.
EDGE_WASM_TOOLS_FEATURES := component,print,parse,validate,compose,metadata
EDGE_COMPOSE_ENV = WASM_TOOLS=$(EDGE_WASM_TOOLS) WAC=$(EDGE_WAC) EDGE_WASM_DIR=$(EDGE_WASM_DIR)
EDGE_TEST_ENV    = ACTIONBOX=$(ACTIONBOX) SIMULATOR=$(SIMULATOR) SHIPSTATION_WASM=$(COMPONENT) \
                   EDGE_SERVE=$(EDGE_SERVE) JCO=$(JCO) $(EDGE_COMPOSE_ENV)

.PHONY: edge-tools edge edge-wit edge-test

# `--version` prints e.g. `wasm-tools 1.263.0`: reinstall only when that is not the pinned version.
edge-tools:
	@if [ "$$($(EDGE_WASM_TOOLS) --version 2>/dev/null | cut -d' ' -f2)" = "$(EDGE_WASM_TOOLS_VERSION)" ]; then \
		echo "wasm-tools $(EDGE_WASM_TOOLS_VERSION) already in $(EDGE_TOOLS)/bin"; \
	else \
		echo "$(CARGO) install --locked --root $(EDGE_TOOLS) wasm-tools@$(EDGE_WASM_TOOLS_VERSION)"; \
		$(CARGO) install --quiet --locked --force --root $(EDGE_TOOLS) wasm-tools@$(EDGE_WASM_TOOLS_VERSION) \
			--no-default-features --features $(EDGE_WASM_TOOLS_FEATURES) || exit 1; \
	fi
	@if [ "$$($(EDGE_WAC) --version 2>/dev/null | cut -d' ' -f2)" = "$(EDGE_WAC_VERSION)" ]; then \
		echo "wac-cli $(EDGE_WAC_VERSION) already in $(EDGE_TOOLS)/bin"; \
	else \
		echo "$(CARGO) install --locked --root $(EDGE_TOOLS) wac-cli@$(EDGE_WAC_VERSION)"; \
		$(CARGO) install --quiet --locked --force --root $(EDGE_TOOLS) wac-cli@$(EDGE_WAC_VERSION) \
			--no-default-features --features wit || exit 1; \
	fi

# The three edge components, built for size like the guest (GUEST_PROFILE: fat
# LTO, opt-level z, one codegen unit; the [profile.release.package.edge-*]
# sections in Cargo.toml set opt-level "s" for the edge crates themselves),
# then composed with the unmodified $(COMPONENT).
edge: component edge-tools
	$(GUEST_PROFILE) $(CARGO) build --release -p edge-gateway -p edge-adapter -p edge-cli-stubs --target $(WASM_TARGET)
	$(EDGE_COMPOSE_ENV) guest/edge/compose.sh $(COMPONENT) $(EDGE_COMPOSED)

# What the composed component imports from the runtime and exports to it.
edge-wit: edge
	@$(EDGE_WASM_TOOLS) component wit $(EDGE_COMPOSED) | sed -n '/^world root {/,/^}/p'

# edge-serve is built in the same cargo invocation as the host, so the features
# of their shared dependencies unify and wasmtime is compiled once for both.
# The probe action is composed exactly like ShipStation, for the policy checks.
edge-test: edge $(JCO_STAMP)
	$(EDGE_TEST_ENV) tests/edge/refusals.sh
	$(CARGO) build --release -p actionbox -p shipstation-sim -p edge-serve
	$(GUEST_PROFILE) $(CARGO) build --release -p edge-probe --target $(WASM_TARGET)
	$(EDGE_COMPOSE_ENV) guest/edge/compose.sh $(EDGE_WASM_DIR)/edge_probe.wasm $(EDGE_PROBE)
	$(EDGE_TEST_ENV) tests/edge/e2e.sh $(EDGE_COMPOSED) serve
	$(EDGE_TEST_ENV) tests/edge/e2e.sh $(EDGE_COMPOSED) jco
	$(EDGE_TEST_ENV) tests/edge/policy.sh $(EDGE_PROBE) serve
	$(EDGE_TEST_ENV) tests/edge/policy.sh $(EDGE_PROBE) jco

# For `make lint` (after its workspace-wide fmt check, which covers these crates):
#   lint: setup
#   	...
#   	$(EDGE_LINT)
define EDGE_LINT
$(CARGO) clippy --release -p edge-serve --all-targets -- -D warnings
$(CARGO) clippy --release -p edge-gateway -p edge-adapter -p edge-cli-stubs -p edge-probe --target $(WASM_TARGET) -- -D warnings
endef

.DEFAULT_GOAL := $(EDGE_SAVED_DEFAULT_GOAL)
