# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user in a
# slim image with only CA certificates added (TLS is rustls; no OpenSSL).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && printf 'fn main() {}\n' > benches/ics.rs \
    && cargo build --release --locked --bin calbridge 2>/dev/null || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin calbridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/calbridge --create-home calbridge
COPY --from=build /src/target/release/calbridge /usr/local/bin/calbridge
COPY config/calbridge.example.toml /etc/calbridge/calbridge.example.toml
USER calbridge
ENV CALBRIDGE_LISTEN=0.0.0.0:8080 \
    CALBRIDGE_DATA=/var/lib/calbridge/data
VOLUME ["/var/lib/calbridge"]
EXPOSE 8080
ENTRYPOINT ["calbridge"]
CMD ["serve"]
