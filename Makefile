# cclaunch: make demo | test | test-swarm | test-k8s | images | bench | lint
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build demo test test-swarm swarm-deps test-k8s k8s-deps unit images engine bench lint fmt clean-test-images docker-image

all: build

build:
	$(CARGO) build --release

## The whole job end to end: engine, base images, package, build, start, logs, ps, stop.
demo: engine build
	testdata/images/make-images.sh busybox toolchain ccenv nodeenv
	scripts/demo.sh

## Every test, against a real Docker engine with locally made images, then
## the tests on a real multi-node swarm (test-swarm) and on a real
## single-node Kubernetes (test-k8s).
test: engine images
	$(CARGO) test --all-targets -- --test-threads=4
	$(MAKE) test-swarm
	$(MAKE) test-k8s

## The tests on a 3-node Docker Swarm that tests/cluster/with-swarm.sh makes
## for them, in network namespaces of its own (docs/TESTING.md).
test-swarm: engine swarm-deps
	testdata/images/make-images.sh busybox
	tests/cluster/with-swarm.sh $(CARGO) test --test swarm_lab -- --test-threads=2

swarm-deps:
	tests/cluster/install-deps.sh

## The tests on a single-node Kubernetes 1.20 that tests/cluster/with-k8s.sh
## builds from Debian's source package (once, cached in
## /var/cache/cclaunch-k8s) and runs in a network namespace of its own
## (docs/TESTING.md). One lab per machine: a second run waits for the first.
test-k8s: engine k8s-deps
	testdata/images/make-images.sh busybox
	tests/cluster/with-k8s.sh $(CARGO) test --test k8s_lab -- --test-threads=4

k8s-deps:
	tests/cluster/k8s-deps.sh

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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The sidecar's own image (see Dockerfile for the base image arguments).
docker-image:
	docker build -t cclaunch:$$($(CARGO) pkgid | sed 's/.*[#@]//') .
