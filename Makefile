# Thin wrapper over CMake. `make demo` and `make test` first install what is missing (or print
# the apt-get line to run), then build and run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test test-asan test-cuda bench format format-check clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600
	$(MAKE) test-asan
	scripts/check-format.sh

# Unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer (CPU build).
test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=ON -DTP_CUDA=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -LE slow

test-cuda:
	cmake -S . -B build-cuda -DTP_STATIC_DEPS=ON
	cmake --build build-cuda -j $(JOBS)
	cd build-cuda && ctest --output-on-failure -L cuda

bench: build
	$(BUILD)/telepathy bench

format:
	scripts/check-format.sh --fix

format-check:
	scripts/check-format.sh

clean:
	rm -rf $(BUILD) build-asan build-cuda
