# EMS top-level entry points. `make test` and `make demo` work on a fresh Debian 12 machine.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan test test-unit test-asan test-tsan demo bench clean format

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEMS_SANITIZE=ON \
	  -DEMS_BUILD_BENCHMARKS=OFF $(CMAKE_FLAGS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# All tests, then the same suite under ASan+UBSan.
test: test-unit test-asan

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The suite under ThreadSanitizer (scripts/tsan.sh says why it is separate and what it needs).
test-tsan: deps
	JOBS=$(JOBS) ./scripts/tsan.sh $(TSAN_BUILD)

demo: build
	./scripts/demo.sh $(BUILD)/bin

bench: build
	./scripts/bench.sh $(BUILD)/bin

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
