#!/usr/bin/env bash
# gpu-check.sh checks the CUDA path on a machine with an NVIDIA GPU: it fetches the CUDA
# build of ONNX Runtime (studio fetch runtime --gpu), runs the CUDA tests, then a short
# `studio bench --device cuda` per shipped task while sampling nvidia-smi, and prints GPU
# busy %, images/s and pipeline/raw for each.
#
# Needs: an NVIDIA driver (nvidia-smi), the CUDA 13 runtime and cuDNN 9 on the library
# path (the Dockerfile.cuda image has them), npm for the first fetch, and Go for the
# tests (without Go they are skipped and only the bench runs, with `studio` from PATH).
# On a machine without an NVIDIA GPU it says so and exits 2.
#
# Settings (environment): JOBS (20 per task), CONCURRENCY (8), TASKS
# ("remove-background upscale"), STUDIO_CACHE, STUDIO_ORT_LIB (default: the fetched
# CUDA build), SAMPLE_MS (nvidia-smi sampling period, 200).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1; then
	echo "gpu-check: no NVIDIA GPU here: nvidia-smi is not installed. Run this on a GPU host (driver R580+ for CUDA 13), e.g. in the Dockerfile.cuda image with --gpus all." >&2
	exit 2
fi
if ! gpus=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) || [ -z "$gpus" ]; then
	echo "gpu-check: no NVIDIA GPU here: nvidia-smi finds no device (driver not loaded, or the container was started without --gpus)." >&2
	exit 2
fi

JOBS=${JOBS:-20}
CONCURRENCY=${CONCURRENCY:-8}
TASKS=${TASKS:-remove-background upscale}
SAMPLE_MS=${SAMPLE_MS:-200}
export STUDIO_CACHE=${STUDIO_CACHE:-$HOME/.cache/studio}
work=$(mktemp -d)
sampler=""
cleanup() {
	if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*" >&2; }

step "GPU"
echo "$gpus"

if command -v go >/dev/null 2>&1; then
	step "build"
	go build -o bin/studio ./cmd/studio
	studio=bin/studio
elif command -v studio >/dev/null 2>&1; then
	studio=studio
else
	echo "gpu-check: neither Go (to build studio) nor a studio binary on PATH" >&2
	exit 1
fi

step "fetch the CUDA build of ONNX Runtime, the models and the photos (cached in $STUDIO_CACHE)"
"$studio" fetch runtime --gpu
"$studio" fetch models photos
lib=${STUDIO_ORT_LIB:-$STUDIO_CACHE/lib/onnxruntime-cuda-1.29.0/libonnxruntime.so}
echo "ONNX Runtime: $lib"

if command -v go >/dev/null 2>&1; then
	step "CUDA tests (processors/inference/ort: the provider loads, IS-Net runs on the GPU)"
	# ONNX Runtime loads one library per process: each test gets its own go test run.
	STUDIO_TEST_CUDA_LIB=$lib go test -count=1 -v -run '^TestCUDA$' ./processors/inference/ort
	go test -count=1 -v -run '^TestCUDARuntimeLoads$' ./processors/inference/ort
else
	step "CUDA tests skipped: no Go toolchain on this machine"
fi

# json_num FILE KEY prints the first number stored under "KEY" in a JSON report.
json_num() { grep -o "\"$2\": *[0-9.eE+-]*" "$1" | head -n 1 | sed 's/.*: *//'; }

step "studio bench --device cuda ($JOBS jobs per task, $CONCURRENCY in flight)"
summary=()
for task in $TASKS; do
	util="$work/$task-util.csv"
	nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms "$SAMPLE_MS" >"$util" &
	sampler=$!
	"$studio" bench --task "$task" --device cuda --ort-lib "$lib" \
		--jobs "$JOBS" --warmup 4 --concurrency "$CONCURRENCY" --json "$work/$task.json"
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	# The samples span the whole run (start-up and the raw baseline included): busy %
	# is the mean over samples taken while the GPU was in use at all, and over all.
	busy=$(awk -F, '{v=$1+0; n++; s+=v; if (v>0) {m++; t+=v}} END {if (n) printf "%.0f%% of %d samples (%.0f%% while in use)", s/n, n, (m ? t/m : 0); else print "no samples"}' "$util")
	ips=$(json_num "$work/$task.json" jobs_per_s)
	ratio=$(json_num "$work/$task.json" pipeline_over_raw)
	summary+=("$(printf '%-18s images/s %-8s pipeline/raw %-6s GPU busy %s' "$task" "${ips:-?}" "${ratio:-?}" "$busy")")
done

step "summary ($(echo "$gpus" | head -n 1))"
printf '%s\n' "${summary[@]}"
