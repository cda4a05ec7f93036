# The project's front door. Every target installs what is missing first (scripts/install-deps).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
STEERD_ARGS ?=

.PHONY: all deps configure build run test test-unit soak bench fuzz clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake --preset default >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

# `make run` starts steerd in the foreground with its config (/etc/steer/steerd.toml when it
# exists, else the built-in default: the dispatcher loaded in this network namespace, no
# bindings, the control socket at /run/steer/steerd.sock, metrics on 127.0.0.1:9641).
# Ctrl-C stops steerd; the kernel keeps steering (`steer unload` removes it).
STEERD := $(BUILD_DIR)/bin/steerd
run: build
	@$(BUILD_DIR)/bin/steer doctor >/dev/null || { $(BUILD_DIR)/bin/steer doctor; exit 1; }
	@exec $(STEERD) $(STEERD_ARGS)

# One test at a time, but the crash sweep two at a time: each of its cases waits on strace and
# the kernel's syscall stops rather than a CPU, so two together take half as long on 2 cores.
# Both runs happen whatever the first one finds.
test: build
	@cd $(BUILD_DIR) && status=0; \
		ctest --output-on-failure -j1 -E '^CrashSweep/' || status=1; \
		ctest --output-on-failure -j2 -R '^CrashSweep/' || status=1; \
		exit $$status

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

# `make fuzz`: the fuzz targets of the parsers (tests/fuzz: the control protocol, steerd's
# config, bindings files) under libFuzzer with ASan and UBSan, FUZZ_SECONDS each. Built with
# clang-16 in build-fuzz/ (clang 14 cannot compile libstdc++ 12's std::expected), every library
# instrumented. Each target runs over build-fuzz/corpus/<target>/ (the seeds of
# tests/fuzz/corpus/ plus what earlier runs found interesting); crashes, leaks, timeouts and
# out-of-memory inputs go to build-fuzz/findings/ (<target>-crash-<sha1>, ...), and the target
# run on one of them reproduces it (build-fuzz/tests/fuzz/<target>_fuzz FILE); each run's
# output is in build-fuzz/<target>.log. `make test` runs the same targets briefly, without
# libFuzzer (ctest -L fuzz).
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := control_request config bindings bindings_fast
# libstdc++ 12 offers <expected> only when __cpp_concepts >= 202002L (conditionally trivial
# special members, P0848): clang 16 implements that but still says 201907L (clang 19 says
# 202002L), so the fuzz build says it for clang.
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-U__cpp_concepts -D__cpp_concepts=202002L
# The BPF objects are still compiled by plain clang (cmake/BpfSkeleton.cmake), with the
# multiarch include directory named after $(CC) -dumpmachine: clang-16 says
# x86_64-pc-linux-gnu, where Debian has /usr/include/x86_64-linux-gnu (asm/types.h).
FUZZ_ENV := C_INCLUDE_PATH=/usr/include/$(shell gcc -print-multiarch 2>/dev/null)
fuzz: deps
	@$(FUZZ_ENV) CC=clang-16 CXX=clang++-16 cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DSTEER_FUZZ=ON -DSTEER_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS=$(FUZZ_FLAGS)" >/dev/null
	@$(FUZZ_ENV) cmake --build $(FUZZ_DIR) -j$(JOBS) --target $(addsuffix _fuzz,$(FUZZ_TARGETS))
	@mkdir -p $(FUZZ_DIR)/findings
	@export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1; status=0; summary=; \
	symbolizer=$$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true); \
	if [ -n "$$symbolizer" ]; then export ASAN_SYMBOLIZER_PATH=$$symbolizer; fi; \
	for target in $(FUZZ_TARGETS); do \
		corpus=$(FUZZ_DIR)/corpus/$$target; log=$(FUZZ_DIR)/$$target.log; \
		mkdir -p $$corpus && cp -n tests/fuzz/corpus/$$target/* $$corpus/; \
		before=$$(ls $(FUZZ_DIR)/findings | grep -c "^$$target-" || true); \
		echo "fuzz: $$target for $(FUZZ_SECONDS) s (log: $$log)"; \
		$(FUZZ_DIR)/tests/fuzz/$${target}_fuzz $$corpus -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/findings/$$target- \
			>$$log 2>&1 || status=1; \
		runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -1); \
		after=$$(ls $(FUZZ_DIR)/findings | grep -c "^$$target-" || true); \
		summary="$$summary$$target: $${runs:-?} executions, $$((after - before)) findings\n"; \
	done; \
	printf '%b' "$$summary"; \
	if [ $$status -ne 0 ]; then echo "fuzz: a target failed: its log is $(FUZZ_DIR)/<target>.log, the input in $(FUZZ_DIR)/findings/"; fi; \
	exit $$status

clean:
	@rm -rf $(BUILD_DIR)
