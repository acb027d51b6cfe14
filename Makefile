# Palisade — the two commands a fresh Debian 12 machine needs: `make demo` and `make test`.
# Both install missing packages first (`make deps`, idempotent). Tests and the demo run as root:
# they create network namespaces, test users, a private system bus and polkitd. The host's own
# firewall, bus and polkit are never touched.

CARGO ?= cargo
BIN_DIR := $(CURDIR)/target/debug
RELEASE_DIR := $(CURDIR)/target/release
export PALISADE_BIN_DIR ?= $(BIN_DIR)

.DEFAULT_GOAL := all
.PHONY: all deps build build-release check lint unit e2e data test bench demo screenshots clean-test fuzz

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
# Both test runs select the whole workspace and pick their test targets by name: cargo resolves
# dependencies' features for the packages selected, so `--exclude palisade-tests` and
# `-p palisade-tests` each built a dozen crates (gtk4, glib, zbus, tokio, ...) anew with other
# features than `build` did, 3 minutes of a cold CI run; these reuse its build.
E2E_TESTS := $(sort $(basename $(notdir $(wildcard tests/tests/*.rs))))
UNIT_TESTS := $(sort $(basename $(notdir $(wildcard dbus/tests/*.rs nfnetlink/tests/*.rs helper/tests/*.rs app/tests/*.rs))))

unit: build
	$(CARGO) test --workspace --lib --bins $(addprefix --test ,$(UNIT_TESTS)) -- --include-ignored

# End-to-end tests share machine-wide things (test users, per-VM users), so they run one at a time.
e2e: build
	@set -e; trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	$(CARGO) test --workspace $(addprefix --test ,$(E2E_TESTS)) -- --test-threads=1

data: deps
	bash tests/scripts/validate-data.sh
	bash po/check.sh

test: lint unit data e2e

bench: build-release
	$(CARGO) build --release -p palisade-tests --bin palisade-bench
	@trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	PALISADE_BIN_DIR=$(RELEASE_DIR) $(RELEASE_DIR)/palisade-bench

# Fuzzing with cargo fuzz (libFuzzer), FUZZ_SECONDS per target. cargo fuzz passes nightly-only
# -Z flags; where no nightly toolchain is installed (the project's machines have one stable
# toolchain) RUSTC_BOOTSTRAP=1 lets stable accept them. No sanitizer: the targets are safe Rust,
# and what they look for is panics, hangs and unbounded memory, which libFuzzer reports itself.
# New inputs go to fuzz/corpus/<target> (minimized afterwards, and replayed by `make test`);
# a crash goes to fuzz/artifacts/<target>: copy it to fuzz/regressions/<target> with its fix.
FUZZ_TARGETS := policy policy_merge blocklist usb vv bus_arguments dns drop_log
FUZZ_SECONDS ?= 300
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 || exit 1; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz cmin --sanitizer none $$t || exit 1; \
	done

demo: build
	@trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	$(BIN_DIR)/palisade-demo

# PNGs of every page of the app, light and dark, English and Russian, in docs/screenshots/ (run as
# root, like the demo, whose installation it photographs). Not part of `make test`. The demo VM
# runs without KVM here: the pictures need one boot that works everywhere, not a fast one.
screenshots: build
	@trap 'bash tests/scripts/cleanup.sh >/dev/null 2>&1 || true' EXIT; \
	$(BIN_DIR)/palisade-screenshots --tcg

clean-test:
	bash tests/scripts/cleanup.sh

include mk/install.mk
