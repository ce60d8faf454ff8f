# Quick start (README):  make bench   — build in release and run the store benchmark table
#                        make test    — build, run every test, and a short fuzz smoke run
SWIFT ?= swift
BENCH_ARGS ?=
FUZZ_SECONDS ?= 15

.PHONY: deps build release test bench bench-log fuzz fuzz-smoke clean

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product cairn

# Builds every target first: the kill and check tests run the `cairn` executable.
test: deps
	$(SWIFT) build --build-tests
	SWIFTNIO_STRICT=1 $(SWIFT) test --skip-build
	$(MAKE) fuzz-smoke

bench: release
	.build/release/cairn bench $(BENCH_ARGS)

bench-log: release
	.build/release/cairn bench log $(BENCH_ARGS)

fuzz-smoke: deps
	Fuzz/run $(FUZZ_SECONDS)

fuzz: deps
	Fuzz/run 600

clean:
	rm -rf .build Fuzz/.build Fuzz/corpus-work
