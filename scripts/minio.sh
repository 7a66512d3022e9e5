#!/usr/bin/env bash
# minio.sh starts and stops a throwaway MinIO server for the S3 tests.
#
#   eval "$(scripts/minio.sh start)"   # stdout: export lines only; logs go to stderr
#   go test -race ./internal/blob/...
#   scripts/minio.sh stop
#
# The server is built once from the Go module proxy and cached as
# ${STUDIO_CACHE:-$HOME/.cache/studio}/bin/minio-<pseudo-version>. Every start uses a
# fresh data dir and fresh credentials and listens on loopback only. State (pid file,
# log, data dir path) lives in the run dir, ${STUDIO_MINIO_RUN_DIR:-$STUDIO_CACHE/run/minio},
# so `stop` finds the server that `start` left running.
set -euo pipefail

# The upstream repository stopped tagging semver releases; this is its last commit.
readonly MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
readonly READY_TIMEOUT_S=60
readonly PORT_ATTEMPTS=5

cache_dir=${STUDIO_CACHE:-$HOME/.cache/studio}
bin=$cache_dir/bin/minio-$MINIO_VERSION
run_dir=${STUDIO_MINIO_RUN_DIR:-$cache_dir/run/minio}
pid_file=$run_dir/minio.pid
log_file=$run_dir/minio.log
data_file=$run_dir/data-dir

log() { printf 'minio.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	cat >&2 <<USAGE
usage: $0 start|stop
  start  build MinIO if it is not cached, start it on a free loopback port and print
         export lines for STUDIO_TEST_S3_*; use: eval "\$($0 start)"
  stop   stop the server started from $run_dir and delete its data
USAGE
	exit 2
}

ensure_binary() {
	[[ -x $bin ]] && return 0
	command -v go >/dev/null || die "go is not on PATH; install Go to build MinIO (or put a minio binary at $bin)"
	log "building MinIO $MINIO_VERSION into $bin (about 8 min cold on 2 cores, 30 s with a warm module cache)"
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/studio-minio-build.XXXXXX")
	# A subshell in an empty dir so no go.mod or go.work around us is consulted.
	if ! (cd "$tmp" && GOWORK=off GOBIN="$tmp" go install -trimpath -ldflags='-s -w' \
		"github.com/minio/minio@$MINIO_VERSION") >&2; then
		rm -rf "$tmp"
		die "go install github.com/minio/minio@$MINIO_VERSION failed; see the output above"
	fi
	mkdir -p "$(dirname "$bin")"
	# Copy next to the target, then rename: another job never sees a half-written binary.
	cp "$tmp/minio" "$bin.partial.$$"
	chmod 0755 "$bin.partial.$$"
	mv -f "$bin.partial.$$" "$bin"
	rm -rf "$tmp"
	log "cached $bin"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on right now. Someone may
# take it before MinIO binds, so start() retries when MinIO reports it in use.
free_port() {
	if command -v python3 >/dev/null &&
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null; then
		return 0
	fi
	local p _
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# is_ours succeeds when pid is alive and is our MinIO binary, so a recycled pid is never
# signalled.
is_ours() {
	local pid=$1 cmd
	kill -0 "$pid" 2>/dev/null || return 1
	cmd=$(ps -p "$pid" -o args= 2>/dev/null) || return 1
	[[ $cmd == *"minio-$MINIO_VERSION server"* ]]
}

ready() {
	local url="http://127.0.0.1:$1/minio/health/ready"
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
	else
		python3 -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null
	fi
}

# wait_ready polls the readiness endpoint (not just the port: MinIO accepts connections
# before its object layer is up). Returns 1 when the server died, 2 on timeout.
wait_ready() {
	local pid=$1 port=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || return 1
		ready "$port" && return 0
		sleep 0.25
	done
	return 2
}

kill_pid() {
	local pid=$1 i
	is_ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 40); do
		is_ours "$pid" || return 0
		sleep 0.25
	done
	log "MinIO (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

remove_data_dir() {
	[[ -f $data_file ]] || return 0
	local dir
	dir=$(<"$data_file")
	# Only ever delete a dir this script created.
	[[ $dir == */studio-minio-data.* && -d $dir ]] && rm -rf "$dir"
	rm -f "$data_file"
}

stop() {
	if [[ -f $pid_file ]]; then
		local pid
		pid=$(<"$pid_file")
		if is_ours "$pid"; then
			log "stopping MinIO (pid $pid)"
			kill_pid "$pid"
		fi
		rm -f "$pid_file"
	fi
	remove_data_dir
}

start() {
	ensure_binary
	mkdir -p "$run_dir"
	if [[ -f $pid_file ]]; then
		log "a previous MinIO from $run_dir is still recorded; stopping it first"
		stop
	fi

	local data_dir user password port console_port pid attempt status
	data_dir=$(mktemp -d "${TMPDIR:-/tmp}/studio-minio-data.XXXXXX")
	echo "$data_dir" >"$data_file"
	user=studio-$(random_hex 4)
	password=$(random_hex 16)

	for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
		port=$(free_port) || die "found no free port on 127.0.0.1"
		console_port=$(free_port) || die "found no free port on 127.0.0.1"
		[[ $port != "$console_port" ]] || continue

		log "starting MinIO on 127.0.0.1:$port (data $data_dir, log $log_file)"
		# MINIO_CI_CD allows a data dir on the root disk; update checks would only time
		# out on machines without internet access.
		MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$password MINIO_BROWSER=off \
			MINIO_CI_CD=on MINIO_UPDATE=off \
			nohup "$bin" server "$data_dir" \
			--address "127.0.0.1:$port" --console-address "127.0.0.1:$console_port" \
			</dev/null >"$log_file" 2>&1 &
		pid=$!
		echo "$pid" >"$pid_file"

		status=0
		wait_ready "$pid" "$port" || status=$?
		if ((status == 0)); then
			log "MinIO ready at http://127.0.0.1:$port (pid $pid); stop it with: $0 stop"
			printf 'export STUDIO_TEST_S3_ENDPOINT=%q\n' "127.0.0.1:$port"
			printf 'export STUDIO_TEST_S3_ACCESS_KEY=%q\n' "$user"
			printf 'export STUDIO_TEST_S3_SECRET_KEY=%q\n' "$password"
			return 0
		fi
		kill_pid "$pid"
		rm -f "$pid_file"
		if ((status == 1)) && grep -qi 'already in use' "$log_file"; then
			log "port taken before MinIO bound it (attempt $attempt of $PORT_ATTEMPTS); retrying"
			continue
		fi
		if ((status == 2)); then
			log "MinIO was not ready after ${READY_TIMEOUT_S}s; last lines of $log_file:"
		else
			log "MinIO exited during start-up; last lines of $log_file:"
		fi
		tail -n 30 "$log_file" >&2 || true
		remove_data_dir
		exit 1
	done
	remove_data_dir
	die "no free port pair after $PORT_ATTEMPTS attempts; last lines of $log_file: $(tail -n 5 "$log_file" 2>/dev/null)"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) usage ;;
esac
