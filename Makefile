# cclaunch: make demo | test | images | bench | lint
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build portable demo test unit images engine bench lint fmt clean-test-images docker-image docker-image-portable

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
## packaging tests run the portable binary in an old-glibc image).
test: engine images portable
	$(CARGO) test --all-targets -- --test-threads=4

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
