# cclaunch: make demo | test | test-swarm | test-k8s | images | bench | fuzz | lint
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build portable demo test test-swarm swarm-deps test-k8s k8s-deps unit images engine bench fuzz lint fmt clean-test-images docker-image docker-image-portable

all: build

build:
	$(CARGO) build --release

## The binary to put in a peer's image: statically linked (glibc inside), so it
## runs on any x86-64 Linux, old glibc (Fabric 2.5.0-2.5.10 peer images, glibc
## 2.31) and musl (Alpine) included: target/portable/cclaunch.
PORTABLE_TARGET := x86_64-unknown-linux-gnu
portable:
	RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static" \
	  $(CARGO) build --release --locked --bin cclaunch --target $(PORTABLE_TARGET)
	mkdir -p target/portable
	strip -o target/portable/cclaunch.tmp target/$(PORTABLE_TARGET)/release/cclaunch
	mv target/portable/cclaunch.tmp target/portable/cclaunch

## The whole job end to end: engine, base images, package, build, start, logs, ps, stop.
demo: engine build
	testdata/images/make-images.sh busybox toolchain ccenv nodeenv
	scripts/demo.sh

## Every test, against a real Docker engine with locally made images (the
## packaging tests run the portable binary in an old-glibc image), then the
## tests on a real multi-node swarm (test-swarm) and on a real single-node
## Kubernetes (test-k8s).
test: engine images portable
	$(CARGO) test --all-targets -- --test-threads=4
	$(MAKE) test-swarm
	$(MAKE) test-k8s

## The tests on a 3-node Docker Swarm that tests/cluster/with-swarm.sh makes
## for them, in network namespaces of its own (docs/TESTING.md).
test-swarm: engine swarm-deps
	testdata/images/make-images.sh busybox shenv
	tests/cluster/with-swarm.sh $(CARGO) test --test swarm_lab --test swarm_engine --test swarm_faces --test swarm_chaincode --test swarm_failures --test swarm_builder -- --test-threads=2

swarm-deps:
	tests/cluster/install-deps.sh

## The tests on a single-node Kubernetes 1.20 that tests/cluster/with-k8s.sh
## builds from Debian's source package (once, cached in
## /var/cache/cclaunch-k8s) and runs in a network namespace of its own
## (docs/TESTING.md). One lab per machine: a second run waits for the first.
test-k8s: engine k8s-deps
	testdata/images/make-images.sh busybox shenv toolchain ccenv nodeenv
	tests/cluster/with-k8s.sh $(CARGO) test --test k8s_lab --test k8s_engine --test k8s_faces -- --test-threads=4

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
## The fleet section (1,000 chaincodes under one sidecar) takes ~25 min here:
## BENCH_FLEET chaincodes, BENCH_STEADY_SECS of steady output. The swarm
## section runs on its own, on a lab that tests/cluster/with-swarm.sh makes;
## the Kubernetes one (32 chaincodes at once there and on Docker) is a
## measuring test run on the Kubernetes lab.
BENCH_FLEET ?= 1000
BENCH_STEADY_SECS ?= 600
bench: engine images build swarm-deps k8s-deps
	CCLAUNCH_BENCH_FLEET=$(BENCH_FLEET) CCLAUNCH_BENCH_STEADY_SECS=$(BENCH_STEADY_SECS) \
	  $(CARGO) run --release --example bench
	tests/cluster/with-swarm.sh $(CARGO) run --release --example bench -- swarm
	tests/cluster/with-k8s.sh $(CARGO) test --test k8s_engine -- --ignored --nocapture thirty_two

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
VERSION = $$($(CARGO) pkgid | sed 's/.*[#@]//')
docker-image:
	docker build -t cclaunch:$(VERSION) .

## The same image without a Rust image: the portable binary built here is copied
## in (RUNTIME_IMAGE=... picks the base; it needs a shell for the copy step).
RUNTIME_IMAGE ?= debian:bookworm-slim
docker-image-portable: portable
	docker build --build-arg BINARY=target/portable/cclaunch \
	  --build-arg RUST_IMAGE=$(RUNTIME_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) \
	  -t cclaunch:$(VERSION) .
