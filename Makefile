# Thin wrapper over CMake: out-of-tree builds in build/ (and build-asan/,
# build-fuzz/). `make test` is what CI runs.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all deps configure build test test-sanitize check demo fuzz bench install format \
        format-check clean

all: build

deps:
	scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCEL_WERROR=ON $(CMAKE_ARGS)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The whole suite: unit, integration (real worker processes, real SQLite),
# Redis interop with Python Celery (servers started by the tests) and
# fuzz-corpus replay. Installs missing packages first (a no-op when all
# are there), so it is the one command on a fresh machine too.
test: deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCEL_WERROR=ON -DCEL_SANITIZE=ON \
	    $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

check: test test-sanitize format-check

# Installs what is missing, builds, and runs a worker with the example
# tasks plus a client against ./celeriac.db (no server needed).
demo: deps build
	scripts/demo.sh $(BUILD)

# libFuzzer targets (clang); run one on a scratch copy of its corpus, or
# libFuzzer adds every new input to the checked-in seeds:
#   mkdir -p /tmp/corpus && build-fuzz/fuzz/fuzz_message -max_total_time=60 /tmp/corpus \
#       fuzz/corpus/message
fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCEL_BUILD_FUZZERS=ON \
	    -DCEL_BUILD_TESTS=OFF $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

bench: build
	scripts/bench.sh $(BUILD)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
