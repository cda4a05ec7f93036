# The project's front door. Every target installs what is missing first (scripts/install-deps).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
STEERD_ARGS ?=

.PHONY: all deps configure build run test test-unit bench clean

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

bench: build
	@scripts/bench

clean:
	@rm -rf $(BUILD_DIR)
