# syntax=docker/dockerfile:1
#
# The images of the whole system, from one build of every binary (the `builder` stage):
#
# - `runtime` (the default, last target): the production image, with the five service
#   binaries (cudly-accounts, cudly-planner, cudly-executor, cudly-sweeper,
#   cudly-gateway) and the all-in-one `cudly`. The Helm chart and compose's services
#   pick the binary per service with `command`.
# - `sandbox`: the AWS emulator `cudly-aws-sandbox` alone, on the same runtime base.
#   Only compose's `sandbox` service (a demo and test bench) uses it. The emulator
#   plays AWS with made-up accounts and keys, so it has no place in the image that
#   runs next to real AWS credentials: it is not in `runtime`.
#
# Why one production image rather than one per service: the binaries share one
# Cargo.lock, one compiler run and almost all of their code (tokio, tonic, sqlx, the
# AWS SDK), so one build produces all of them at the cost of about one; there is one
# image to sign, scan and promote, and every service provably runs the same libraries
# at the same commit; and the binaries are small next to a base layer that would be
# repeated per image anyway. The price is that a change to one service rolls out a new
# digest for all of them, which a system deployed as a whole does anyway.
#
#   docker build -t cudly-rs:local .                                 # runtime
#   docker build --target sandbox -t cudly-rs-sandbox:local .        # the emulator
#   docker build --build-arg RUST_IMAGE=rust:1.95-bookworm -t cudly-rs:local .
#
# No protoc is needed: libs/proto compiles the .proto files with protox (pure Rust).

# Base images, each a full reference in one ARG. Pin them by digest for reproducible,
# tamper-evident builds: scripts/pin-images resolves the current digest of each tag
# below (docker buildx imagetools or crane) and rewrites the defaults as
# `<image>:<tag>@sha256:<digest>`; scripts/check-deploy.py warns while they are not
# pinned. Re-run it to take base image updates (security fixes), and review the diff.
# The builder must be at least the workspace's rust-version (1.94): `rust:1` follows
# the newest stable. Both images must be the same Debian suite (the binaries link
# against the builder's glibc).
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------
# Dependency caching with cargo-chef (crates.io), rather than copying the manifests
# and building dummy sources by hand: the workspace has thirteen members, each with
# its own lib/main targets, tests, and a build script in libs/proto; a hand-written
# dummy tree would have to mirror all of them and silently stops caching when a
# member is added. `cargo chef prepare` derives that skeleton from the manifests and
# Cargo.lock, so the expensive layer (tokio, tonic, sqlx and the eight aws-sdk crates,
# most of a 10-minute build) is rebuilt only when dependencies change.
# ---------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked
WORKDIR /build
# Smaller binaries without touching Cargo.toml: no symbols in release builds. Set here
# so that the cooked dependencies and the final build use the same profile.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The same package selection for `cook` and `build`, so that feature unification is
# identical and the cooked dependencies are reused rather than rebuilt. No default
# features: the image's `cudly` is built without the in-process AWS emulator (feature
# `emulator`, the only default feature of these packages); the emulator ships in the
# `sandbox` target alone.
ARG PACKAGES="-p cudly-accounts -p cudly-planner -p cudly-executor -p cudly-sweeper -p cudly-gateway -p cudly -p cudly-aws-sandbox --no-default-features"
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked ${PACKAGES} --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked ${PACKAGES} \
      --bin cudly-accounts \
      --bin cudly-planner \
      --bin cudly-executor \
      --bin cudly-sweeper \
      --bin cudly-gateway \
      --bin cudly \
      --bin cudly-aws-sandbox

# ---------------------------------------------------------------------------------
# Runtime base of both images: debian slim (same glibc as the builder) with CA
# certificates for TLS to AWS, and nothing else added: no curl, no package manager
# caches. Health checks use what the base already has (bash's /dev/tcp, see
# compose.yaml); Kubernetes probes need nothing inside the image.
# ---------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# ca-certificates is left unpinned on purpose: a pinned version vanishes from the
# mirror at its next update, and the newest CA bundle is the one we want.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cudly \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/cudly \
      --shell /usr/sbin/nologin cudly \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/cudly
ARG VERSION=dev
LABEL org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# The working directory is the only writable place the image prepares: the all-in-one
# `cudly` keeps its dev-mode secrets in ./.cudly there. The services write nothing.
WORKDIR /var/lib/cudly
USER 10001:10001

# ---------------------------------------------------------------------------------
# The AWS emulator, for compose's `sandbox` profile only (docker build --target
# sandbox). Never deploy it next to real AWS credentials.
# ---------------------------------------------------------------------------------
FROM runtime-base AS sandbox
COPY --from=builder /build/target/release/cudly-aws-sandbox /usr/local/bin/
LABEL org.opencontainers.image.title="cudly-rs-sandbox" \
      org.opencontainers.image.description="CUDly-rs AWS emulator (cudly-aws-sandbox), for demos and tests only"
EXPOSE 4566
CMD ["cudly-aws-sandbox", "--listen", "0.0.0.0:4566"]

# ---------------------------------------------------------------------------------
# The production image (the default target): the six production binaries, no
# emulator.
# ---------------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=builder \
     /build/target/release/cudly-accounts \
     /build/target/release/cudly-planner \
     /build/target/release/cudly-executor \
     /build/target/release/cudly-sweeper \
     /build/target/release/cudly-gateway \
     /build/target/release/cudly \
     /usr/local/bin/
LABEL org.opencontainers.image.title="cudly-rs" \
      org.opencontainers.image.description="CUDly-rs services and all-in-one binary"
# gateway 8080; gRPC 50051-50054; metrics 9091-9095 (documentation only).
EXPOSE 8080 50051 50052 50053 50054 9091 9092 9093 9094 9095
# No ENTRYPOINT: every deployment names its binary as the command. The default is the
# gateway, the one public service.
CMD ["cudly-gateway"]
