# The two commands of the README, and the helpers behind them.
#   make demo      install, build, run the demo scenario (exit 0 = all steps ok)
#   make demo-up   the same, but leave MariaDB and the broker running
#   make test      install, build, run the whole test suite
#   make test-asan the suite built with AddressSanitizer + UBSan
#   make fuzz      build the libFuzzer targets and run them (FUZZ_SECONDS=60 for HTTP
#                  requests, half as long each for pages and OpenAPI texts)
#   make bench     all benchmarks (bench/*/run)
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all deps build test test-asan fuzz demo demo-up demo-down bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGDX_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS)

fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DGDX_FUZZ=ON -DGDX_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target fuzz_http_request fuzz_page fuzz_openapi
	mkdir -p build-fuzz/corpus build-fuzz/page-corpus build-fuzz/openapi-corpus
	cp tests/fuzz/corpus/* tests/fuzz/regressions/* build-fuzz/corpus/
	cp tests/fuzz/page-corpus/* build-fuzz/page-corpus/
	cp tests/fuzz/openapi-corpus/* build-fuzz/openapi-corpus/
	build-fuzz/tests/fuzz/fuzz_http_request -max_total_time=$(FUZZ_SECONDS) \
	  -dict=tests/fuzz/http.dict -max_len=4096 -timeout=10 build-fuzz/corpus
	build-fuzz/tests/fuzz/fuzz_page -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) \
	  -max_len=4096 -timeout=10 build-fuzz/page-corpus
	build-fuzz/tests/fuzz/fuzz_openapi -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) \
	  -dict=tests/fuzz/openapi.dict -max_len=8192 -timeout=10 build-fuzz/openapi-corpus

demo: build
	scripts/demo

demo-up: build
	scripts/demo --keep

demo-down:
	scripts/demo --down

bench: build
	@for b in bench/*/run; do $$b || exit 1; done

clean:
	rm -rf $(BUILD) build-asan build-fuzz
