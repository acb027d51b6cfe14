# Palisade — the two commands a fresh Debian 12 machine needs: `make demo` and `make test`.
# Both install missing packages first (`make deps`, idempotent). Tests and the demo run as root:
# they create network namespaces, test users, a private system bus and polkitd. The host's own
# firewall, bus and polkit are never touched.

CARGO ?= cargo
BIN_DIR := $(CURDIR)/target/debug
RELEASE_DIR := $(CURDIR)/target/release
export PALISADE_BIN_DIR ?= $(BIN_DIR)

.DEFAULT_GOAL := all
.PHONY: all deps build build-release check lint unit e2e data test bench demo clean-test

all: build

deps:
	@bash tests/scripts/deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

build-release: deps
	$(CARGO) build --release --workspace

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Tests that need root and a network namespace are marked #[ignore = "needs root ..."] so a plain
# `cargo test` as a user skips them visibly; `make test` runs as root and runs them too.
unit: build
	$(CARGO) test --workspace --exclude palisade-tests --lib --bins --tests -- --include-ignored

# End-to-end tests share machine-wide things (test users, per-VM users), so they run one at a time.
e2e: build
	@set -e; trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	$(CARGO) test -p palisade-tests --tests -- --test-threads=1

data: deps
	bash tests/scripts/validate-data.sh
	bash po/check.sh

test: lint unit data e2e

bench: build-release
	$(CARGO) build --release -p palisade-tests --bin palisade-bench
	@trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	PALISADE_BIN_DIR=$(RELEASE_DIR) $(RELEASE_DIR)/palisade-bench

demo: build
	@trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	$(BIN_DIR)/palisade-demo

clean-test:
	bash tests/scripts/cleanup.sh

include mk/install.mk
