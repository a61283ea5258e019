# cclaunch: make demo | test | test-swarm | images | bench | fuzz | lint
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build demo test test-swarm swarm-deps unit images engine bench fuzz lint fmt clean-test-images docker-image

all: build

build:
	$(CARGO) build --release

## The whole job end to end: engine, base images, package, build, start, logs, ps, stop.
demo: engine build
	testdata/images/make-images.sh busybox toolchain ccenv nodeenv
	scripts/demo.sh

## Every test, against a real Docker engine with locally made images, then
## the tests on a real multi-node swarm (test-swarm).
test: engine images
	$(CARGO) test --all-targets -- --test-threads=4
	$(MAKE) test-swarm

## The tests on a 3-node Docker Swarm that tests/cluster/with-swarm.sh makes
## for them, in network namespaces of its own (docs/TESTING.md).
test-swarm: engine swarm-deps
	testdata/images/make-images.sh busybox
	tests/cluster/with-swarm.sh $(CARGO) test --test swarm_lab -- --test-threads=2

swarm-deps:
	tests/cluster/install-deps.sh

## Unit tests only (no engine needed).
unit:
	$(CARGO) test --lib

engine:
	scripts/ensure-docker.sh

images: engine
	testdata/images/make-images.sh

## Benchmarks with side-by-side comparisons; figures in docs/BENCHMARKS.md.
## (build: the package section runs the release cclaunch binary.)
bench: engine images build
	$(CARGO) run --release --example bench

## Long fuzz runs (stable toolchain): the package reader, then the sidecar's
## gRPC handlers, FUZZ_SECONDS each; FUZZ_SEED replays a run (its seed is
## printed). Failing packages are saved under target/tmp/fuzz-failures/.
FUZZ_SECONDS ?= 600
fuzz: engine images
	CCLAUNCH_FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_SEED),CCLAUNCH_FUZZ_SEED=$(FUZZ_SEED)) \
	  $(CARGO) test --release --test fuzz_package --test fuzz_api -- --nocapture --test-threads=1

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The sidecar's own image (see Dockerfile for the base image arguments).
docker-image:
	docker build -t cclaunch:$$($(CARGO) pkgid | sed 's/.*[#@]//') .
