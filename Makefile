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

# Until steerd exists, `make run` checks this machine with `steer doctor` and prints the
# commands to go on with.
run: build
	@$(BUILD_DIR)/bin/steer doctor
	@echo
	@echo "steer is built: $(BUILD_DIR)/bin/steer --help"

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j1

test-unit: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit

bench: build
	@scripts/bench

clean:
	@rm -rf $(BUILD_DIR)
