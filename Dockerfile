# The cclaunch sidecar image, in two stages: build with cargo, run on a slim base.
# Both bases are arguments so the image can be built from local or mirrored images:
#   docker build --build-arg RUST_IMAGE=... --build-arg RUNTIME_IMAGE=... -t cclaunch .
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
RUN cargo build --release --locked --bin cclaunch \
 && strip target/release/cclaunch

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="cclaunch" \
      org.opencontainers.image.description="Chaincode launcher sidecar for Hyperledger Fabric"
COPY --from=build /src/target/release/cclaunch /usr/local/bin/cclaunch
# Talks to the engine through the socket mounted at /var/run/docker.sock
# (vm.endpoint); the peer container itself needs no socket.
ENTRYPOINT ["/usr/local/bin/cclaunch"]
CMD ["serve", "--socket", "/run/cclaunch/cclaunch.sock", "--operations", "0.0.0.0:9444"]
