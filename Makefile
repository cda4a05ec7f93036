# The project's front door. Every target installs what is missing first (scripts/install-deps).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
STEERD_ARGS ?=

.PHONY: all deps configure build run test test-unit soak bench clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake --preset default >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

# Until steerd exists, `make run` checks the kernel, loads the dispatcher into this network
# namespace (if it is not there yet: with no bindings it changes nothing) and shows its status.
STEER := $(BUILD_DIR)/bin/steer
run: build
	@$(STEER) doctor
	@echo
	@$(STEER) status >/dev/null 2>&1 || $(STEER) load
	@$(STEER) status
	@echo
	@echo "Next: $(STEER) bind LABEL tcp PREFIX PORTS; $(STEER) register-pid PID LABEL; $(STEER) --help"

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j1

test-unit: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit

# The long runs: the crash-point sweep at every crash point (tests/e2e/crash_sweep_test.cpp):
# steer killed entering each of its bpf() and state-directory calls in turn, for every verb
# (register-pid makes about 1,100), and a million bind/unbind cycles of fresh labels.
# `make soak SOAK_SWEEP=mutations` sweeps only the points right after a state-changing call
# (every distinct state a kill can leave): about 4 minutes.
SOAK_SWEEP ?= full
SOAK_CYCLES ?= 1000000
soak: build
	@cd $(BUILD_DIR) && STEER_CRASH_SWEEP=$(SOAK_SWEEP) STEER_FRESH_LABEL_CYCLES=$(SOAK_CYCLES) \
		ctest -R 'CrashSweep|FreshLabelCycles' --output-on-failure --timeout 172800

bench: build
	@scripts/bench

clean:
	@rm -rf $(BUILD_DIR)
