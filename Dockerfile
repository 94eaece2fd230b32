# imagehub as a container image, built from this checkout:
#
#   docker build -t imagehub .
#
# The server listens on 0.0.0.0:5000 and keeps what it stores locally under
# /var/lib/imagehub (mount a volume there, or point it at PostgreSQL and S3:
# deploy/README.md).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p imagehub \
    && install -m 0755 target/release/imagehub /usr/local/bin/imagehub

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/imagehub imagehub \
    && install -d -o imagehub -g imagehub /var/lib/imagehub /var/lib/imagehub-keys
COPY --from=build /usr/local/bin/imagehub /usr/local/bin/imagehub
USER 10001
WORKDIR /var/lib/imagehub
ENV IMAGEHUB_SERVER__LISTEN=0.0.0.0:5000 \
    IMAGEHUB_STORAGE__DATA_DIR=/var/lib/imagehub
EXPOSE 5000
VOLUME /var/lib/imagehub
ENTRYPOINT ["imagehub"]
CMD ["serve"]
