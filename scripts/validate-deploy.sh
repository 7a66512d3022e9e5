#!/usr/bin/env bash
# validate-deploy.sh checks every deployment artefact offline: Dockerfiles, compose.yaml,
# the kustomize overlays, NATS, Prometheus and Grafana configuration. No cluster and no
# Docker engine are needed.
#
#   scripts/validate-deploy.sh
#
# What it runs:
#   1. promtool check rules / check config / test rules   (deploy/prometheus)
#   2. kustomize build of every overlay                    (deploy/overlays/*)
#   3. kubecheck on each build: strict decoding into the k8s.io/api types, KEDA
#      ScaledObjects against the CRD schema of the pinned KEDA release, and the API
#      server's semantic rules (deploy/tools/kubecheck; kubeconform would need its
#      schemas from the network)
#   4. dockerfilecheck: the Dockerfiles through BuildKit's own frontend and lint rules
#      (what `docker build --check` runs), base images not pulled
#   5. composecheck: compose.yaml (and the CPU override) loaded by compose-go, the
#      library inside Docker Compose, with the compose-spec schema; plus
#      `docker compose config` when a compose plugin is installed
#   6. go test ./deploy/: compose and Dockerfile properties, overlay properties
#      (stages, KEDA triggers per tier consumer, GPU pool, probes, PDBs, pinned images,
#      network policies), the production NATS permissions against a real server, alert
#      rules and dashboards (PromQL through promtool; the business SQL against a
#      ClickHouse server when one is available, see below)
#
# Tools are built or extracted once and cached under ${STUDIO_CACHE:-$HOME/.cache/studio}/bin,
# versioned by name, so runs after the first need no network. Needs: go, and for
# promtool either promtool on PATH or apt-get (the Debian package "prometheus" is
# downloaded and only its promtool binary extracted: installing the package would also
# start a Prometheus service). ClickHouse: STUDIO_TEST_CLICKHOUSE_ADDR (native host:port)
# if set, else a throwaway server from scripts/clickhouse.sh.
set -euo pipefail

readonly KUSTOMIZE_VERSION=v5.8.2 # v5.8.3 needs Go 1.27
readonly KEDA_VERSION=v2.21.0     # CRD schemas for ScaledObject validation
readonly OVERLAYS=(dev prod)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${STUDIO_CACHE:-$HOME/.cache/studio}
bin=$cache/bin
out=$cache/run/validate-deploy
mkdir -p "$bin" "$out"

declare -a passed=() skipped=()
log() { printf 'validate-deploy: %s\n' "$*" >&2; }
die() {
	log "FAILED: $*"
	exit 1
}
pass() {
	passed+=("$1")
	log "ok: $1"
}
skip() {
	skipped+=("$1")
	log "skipped: $1"
}

# install_atomic copies a built binary into the cache so that a concurrent run never
# sees a half-written file.
install_atomic() {
	local src=$1 dst=$2
	cp "$src" "$dst.partial.$$"
	chmod 0755 "$dst.partial.$$"
	mv -f "$dst.partial.$$" "$dst"
}

# go_outside_module runs go in an empty directory so that no go.mod or go.work around
# us is consulted (tool installs must not touch the project's module).
go_outside_module() {
	local tmp rc=0
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/studio-validate.XXXXXX")
	(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod "$@") || rc=$?
	rm -rf "$tmp"
	return "$rc"
}

ensure_kustomize() {
	kustomize=$bin/kustomize-$KUSTOMIZE_VERSION
	[[ -x $kustomize ]] && return 0
	log "building kustomize $KUSTOMIZE_VERSION (once; cached as $kustomize)"
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/studio-kustomize.XXXXXX")
	go_outside_module env GOBIN="$tmp" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" ||
		die "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION failed (module proxy reachable?)"
	install_atomic "$tmp/kustomize" "$kustomize"
	rm -rf "$tmp"
}

ensure_promtool() {
	if [[ -n ${PROMTOOL:-} ]]; then
		promtool=$PROMTOOL
		return 0
	fi
	if command -v promtool >/dev/null; then
		promtool=$(command -v promtool)
		return 0
	fi
	local cached
	cached=$(find "$bin" -maxdepth 1 -name 'promtool-*' -type f 2>/dev/null | sort | tail -n 1)
	if [[ -n $cached ]]; then
		promtool=$cached
		return 0
	fi
	command -v apt-get >/dev/null || {
		promtool=""
		return 0
	}
	log "extracting promtool from the Debian package prometheus (once)"
	local tmp version
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/studio-promtool.XXXXXX")
	# apt downloads as the _apt user where it can.
	chmod 0755 "$tmp"
	if ! (cd "$tmp" && apt-get download prometheus >&2); then
		log "apt-get download prometheus failed; try: apt-get update"
		rm -rf "$tmp"
		promtool=""
		return 0
	fi
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	version=$(dpkg-deb -f "$tmp"/prometheus_*.deb Version | tr -c 'A-Za-z0-9.+\n-' '_')
	promtool=$bin/promtool-$version
	install_atomic "$tmp/x/usr/bin/promtool" "$promtool"
	rm -rf "$tmp"
}

# ensure_tools builds deploy/tools (kubecheck, composecheck, dockerfilecheck: a module
# of its own, so the service's go.mod carries no Kubernetes, Compose or BuildKit
# libraries). The binaries are
# named by the hash of their sources: an edit rebuilds them, an unchanged tree reuses
# the cache.
ensure_tools() {
	local src=$root/deploy/tools hash tmp tool
	hash=$(find "$src" -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -path '*/testdata/*' \) -print0 |
		sort -z | xargs -0 cat | sha256sum | cut -c1-12)
	(cd "$src" && GOWORK=off go test ./... >&2) || die "the checkers' own tests (deploy/tools)"
	pass "deploy/tools unit tests (strict decoding, CRD schemas, semantic rules)"
	kubecheck=$bin/kubecheck-$hash
	composecheck=$bin/composecheck-$hash
	dockerfilecheck=$bin/dockerfilecheck-$hash
	[[ -x $kubecheck && -x $composecheck && -x $dockerfilecheck ]] && return 0
	log "building kubecheck, composecheck and dockerfilecheck ($hash; about a minute the first time)"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/studio-tools.XXXXXX")
	for tool in kubecheck composecheck dockerfilecheck; do
		(cd "$src" && GOWORK=off go build -trimpath -o "$tmp/$tool" "./$tool") || die "go build deploy/tools/$tool"
		install_atomic "$tmp/$tool" "$bin/$tool-$hash"
		# Builds of older sources are never used again.
		find "$bin" -maxdepth 1 -name "$tool-*" ! -name "$tool-$hash" -type f -delete
	done
	rm -rf "$tmp"
}

keda_crd() {
	local dir
	dir=$(go_outside_module go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n $dir ]] || die "go mod download github.com/kedacore/keda/v2@$KEDA_VERSION failed"
	crd=$dir/config/crd/bases/keda.sh_scaledobjects.yaml
	[[ -f $crd ]] || die "no ScaledObject CRD in $dir"
}

# --- throwaway ClickHouse for the business dashboard's SQL ---------------------------
# scripts/clickhouse.sh (the sink tests' server) with a run dir of our own.
ch_run=$out/clickhouse
ch_started=""
stop_clickhouse() {
	if [[ -n $ch_started ]]; then
		STUDIO_CLICKHOUSE_RUN_DIR=$ch_run "$root/scripts/clickhouse.sh" stop >&2 || true
	fi
}
trap stop_clickhouse EXIT

start_clickhouse() {
	[[ -x $root/scripts/clickhouse.sh ]] || return 1
	local exports
	exports=$(STUDIO_CLICKHOUSE_RUN_DIR=$ch_run "$root/scripts/clickhouse.sh" start) || return 1
	ch_started=1
	eval "$exports"
	export STUDIO_TEST_CLICKHOUSE_ADDR
	[[ -n ${STUDIO_TEST_CLICKHOUSE_ADDR:-} ]]
}

# --- run -----------------------------------------------------------------------------
command -v go >/dev/null || die "go is not on PATH"
cd "$root"

ensure_promtool
if [[ -n $promtool ]]; then
	(cd deploy/prometheus &&
		"$promtool" check rules rules/studio.yml >&2 &&
		"$promtool" check config prometheus.yml >&2) || die "promtool check"
	pass "promtool check rules + check config (deploy/prometheus)"
	(cd deploy/prometheus && "$promtool" test rules tests/studio.test.yml >&2) || die "promtool test rules"
	pass "promtool test rules: every alert fires on its input and not on near misses"
	export PROMTOOL=$promtool
else
	skip "promtool (not on PATH and no apt-get): rule syntax and unit tests"
fi

ensure_kustomize
export KUSTOMIZE=$kustomize
ensure_tools
keda_crd
for o in "${OVERLAYS[@]}"; do
	"$kustomize" build "deploy/overlays/$o" >"$out/$o.yaml" || die "kustomize build deploy/overlays/$o"
	pass "kustomize build deploy/overlays/$o ($(grep -c '^kind:' "$out/$o.yaml") objects -> $out/$o.yaml)"
	"$kubecheck" -crd "$crd" "$out/$o.yaml" >&2 || die "kubecheck deploy/overlays/$o"
	pass "kubecheck deploy/overlays/$o: k8s.io/api strict decode, KEDA $KEDA_VERSION ScaledObject schema, semantic rules"
done

"$dockerfilecheck" Dockerfile Dockerfile.cuda || die "dockerfilecheck"
pass "dockerfilecheck Dockerfile Dockerfile.cuda: BuildKit's parser, stage graph and lint rules (docker build --check)"

"$composecheck" -f compose.yaml >&2 || die "composecheck compose.yaml"
"$composecheck" -f compose.yaml -f deploy/compose/cpu.yaml >&2 || die "composecheck compose.yaml + deploy/compose/cpu.yaml"
pass "composecheck: compose-spec schema, interpolation, merges and consistency as docker compose loads them (compose.yaml, + deploy/compose/cpu.yaml); build contexts, mounts, pinned images"
if docker compose version >/dev/null 2>&1; then
	docker compose -f compose.yaml config -q || die "docker compose config"
	docker compose -f compose.yaml -f deploy/compose/cpu.yaml config -q || die "docker compose config (cpu override)"
	pass "docker compose config (compose.yaml, + deploy/compose/cpu.yaml)"
else
	skip "docker compose config (no compose plugin here; composecheck above loads the files with the same library)"
fi

if [[ -z ${STUDIO_TEST_CLICKHOUSE_ADDR:-} ]]; then
	if ! start_clickhouse; then
		skip "business dashboard SQL (no STUDIO_TEST_CLICKHOUSE_ADDR, and scripts/clickhouse.sh could not start a server)"
	fi
fi

go test -count=1 ./deploy/ >&2 || die "go test ./deploy/"
pass "go test ./deploy/ (compose, Dockerfiles, overlays, NATS permissions, alerts, dashboards${STUDIO_TEST_CLICKHOUSE_ADDR:+, business SQL on ClickHouse})"

log "--------------------------------------------------------------"
for p in "${passed[@]}"; do log "PASS  $p"; done
for s in "${skipped[@]}"; do log "SKIP  $s"; done
log "all deployment checks passed"
