# The cclaunch sidecar image, in two stages: get the binary, then a slim runtime.
# Both bases are arguments so the image can be built from local or mirrored images:
#   docker build --build-arg RUST_IMAGE=... --build-arg RUNTIME_IMAGE=... -t cclaunch .
# Without a Rust image, build the binary on the host (`make portable`: static, runs
# on any base) and copy it in; the first stage then only needs a shell:
#   docker build --build-arg BINARY=target/portable/cclaunch \
#       --build-arg RUST_IMAGE=debian:bookworm-slim -t cclaunch .
# (`make docker-image-portable` does that with RUST_IMAGE = RUNTIME_IMAGE.)
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
ARG BINARY=
WORKDIR /src
COPY . .
RUN if [ -n "$BINARY" ]; then \
      cp "$BINARY" /cclaunch; \
    else \
      cargo build --release --locked --bin cclaunch \
      && strip -o /cclaunch target/release/cclaunch; \
    fi

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="cclaunch" \
      org.opencontainers.image.description="Chaincode launcher sidecar for Hyperledger Fabric"
COPY --from=build /cclaunch /usr/local/bin/cclaunch
# Talks to the engine through the socket mounted at /var/run/docker.sock
# (vm.endpoint); the peer container itself needs no socket.
ENTRYPOINT ["/usr/local/bin/cclaunch"]
CMD ["serve", "--socket", "/run/cclaunch/cclaunch.sock", "--operations", "0.0.0.0:9444"]
