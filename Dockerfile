# HealthCore container image: one binary for every role (serve, relay, consume --group NAME).
#
#   docker build -t healthcore:0.1.0 --build-arg HEALTHCORE_REVISION=$(git rev-parse --short HEAD) .
#
# Base images are pinned by version; pin them by digest too in your registry's mirror.

FROM rust:1.95.0-slim-bookworm AS build
# librdkafka (bundled by rdkafka) is built from C sources: a C toolchain, make, perl and zlib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential perl python3 zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
# Cargo checks that every declared target exists: stand-ins for the sources and the test binary.
RUN mkdir -p src tests/api && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
ARG HEALTHCORE_REVISION=unknown
ENV HEALTHCORE_REVISION=${HEALTHCORE_REVISION}
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin healthcore \
    && strip target/release/healthcore

FROM debian:12.8-slim
# rustls with bundled roots: no OpenSSL or CA store needed at run time.
RUN useradd --system --uid 10001 --home-dir /var/lib/healthcore --create-home healthcore
COPY --from=build /src/target/release/healthcore /usr/local/bin/healthcore
USER 10001:10001
WORKDIR /var/lib/healthcore
ENV HEALTHCORE_BIND=0.0.0.0:8000 \
    HEALTHCORE_DATA_DIR=/var/lib/healthcore/data
EXPOSE 8000 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["healthcore", "healthcheck"]
ENTRYPOINT ["healthcore"]
CMD ["serve"]
