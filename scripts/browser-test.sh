#!/usr/bin/env bash
# browser-test.sh runs the browser tests of the web studio (/) and the operations
# dashboard (/ops) against a real `studio up` with the real models: it installs Debian's
# chromium if it is missing (the tests drive it through playwright-core; no browser is
# downloaded), installs the test tools (npm ci in ingest/studio/e2e), builds bin/studio,
# starts it on free loopback ports with a temporary data directory, runs the tests with
# node's test runner, and stops everything. Screenshots of every step land in
# test-artifacts/ (git-ignored), beside the server's log.
#
#   scripts/browser-test.sh                  # everything
#   STUDIO_BIN=/path/to/studio scripts/browser-test.sh   # test a binary built elsewhere
#   STUDIO_UP_FLAGS="--models isnet@small" scripts/browser-test.sh
#   STUDIO_DEV_TOKEN=... scripts/browser-test.sh          # also test signing in with it
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ART=$ROOT/test-artifacts
E2E=$ROOT/ingest/studio/e2e
export STUDIO_CACHE=${STUDIO_CACHE:-$HOME/.cache/studio}

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'browser-test: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node is missing: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is missing"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
	step "install chromium and chromium-driver (apt)"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}

step "test tools (npm ci in ingest/studio/e2e)"
(cd "$E2E" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn)

BIN=${STUDIO_BIN:-}
if [ -z "$BIN" ]; then
	step "build bin/studio"
	go build -o bin/studio ./cmd/studio
	BIN=$ROOT/bin/studio
fi

step "test photos (cached in $STUDIO_CACHE)"
"$BIN" fetch photos

mkdir -p "$ART"
TMP=$(mktemp -d)
STUDIO_PID=""
PROXY_PID=""
cleanup() {
	if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; fi
	if [ -n "$STUDIO_PID" ] && kill -0 "$STUDIO_PID" 2>/dev/null; then
		kill -TERM "$STUDIO_PID" 2>/dev/null || true
		for _ in $(seq 1 40); do kill -0 "$STUDIO_PID" 2>/dev/null || break; sleep 1; done
		kill -KILL "$STUDIO_PID" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
HTTP_PORT=$(free_port)
NATS_PORT=$(free_port)
API=http://127.0.0.1:$HTTP_PORT

# A tiny test Stable Diffusion export (synthetic weights) so the generate page can run.
step "test export for generate (synthetic weights)"
mkdir -p "$TMP/models"
go run ./internal/diffusion/diffusiontest/writeexport "$TMP/models"
# And a synthetic arbitrary-style graph, so the studio's style-image upload can run.
go run ./internal/models/styletest/writeadain "$TMP/models"

step "start studio up on $API (log: test-artifacts/studio-up.log)"
# shellcheck disable=SC2086
"$BIN" up --data-dir "$TMP/data" --http "127.0.0.1:$HTTP_PORT" --nats-listen "127.0.0.1:$NATS_PORT" \
	--nats-monitor= --cache-dir "$STUDIO_CACHE" --model-dir "$TMP/models" ${STUDIO_UP_FLAGS:---auth off} >"$ART/studio-up.log" 2>&1 &
STUDIO_PID=$!
for i in $(seq 1 300); do
	if curl -fsS -o /dev/null "$API/health/ready" 2>/dev/null; then break; fi
	if ! kill -0 "$STUDIO_PID" 2>/dev/null; then
		tail -n 30 "$ART/studio-up.log" >&2
		die "studio up exited before it was ready"
	fi
	[ "$i" = 300 ] && { tail -n 30 "$ART/studio-up.log" >&2; die "studio up was not ready after 300 s"; }
	sleep 1
done

# A development token, when the server prints one (authentication on).
if [ -z "${STUDIO_DEV_TOKEN:-}" ]; then
	STUDIO_DEV_TOKEN=$(sed -n -e 's/.*"dev_token":"\([^"]*\)".*/\1/p' -e 's/.*[Dd]ev token:[[:space:]]*\([^[:space:]"]*\).*/\1/p' "$ART/studio-up.log" | head -n 1)
fi
export STUDIO_DEV_TOKEN

URL=$API
if ! curl -fsS "$API/" 2>/dev/null | grep -q 'name="studio-ui"'; then
	# The API does not mount the studio pages yet: serve them in front of it.
	step "the API does not serve the studio pages: starting ingest/studio/e2e/devproxy in front of it"
	go build -o "$TMP/devproxy" ./ingest/studio/e2e/devproxy
	"$TMP/devproxy" -api "$API" -listen 127.0.0.1:0 -cache-dir "$STUDIO_CACHE" -url-file "$TMP/url" >"$ART/devproxy.log" 2>&1 &
	PROXY_PID=$!
	for _ in $(seq 1 120); do
		[ -s "$TMP/url" ] && break
		kill -0 "$PROXY_PID" 2>/dev/null || { cat "$ART/devproxy.log" >&2; die "devproxy exited"; }
		sleep 0.5
	done
	[ -s "$TMP/url" ] || die "devproxy did not start"
	URL=$(cat "$TMP/url")
fi

step "browser tests against $URL"
set +e
(cd "$E2E" && STUDIO_URL=$URL STUDIO_ARTIFACTS=$ART STUDIO_PHOTO=$STUDIO_CACHE/photos/astronaut.png \
	node --test --test-concurrency=1 prom.test.mjs studio.test.mjs ops.test.mjs)
rc=$?
set -e
echo "screenshots: $(find "$ART" -name '*.png' | wc -l) in test-artifacts/" >&2
exit $rc
