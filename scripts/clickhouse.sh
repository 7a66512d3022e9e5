#!/usr/bin/env bash
# clickhouse.sh starts and stops a throwaway ClickHouse server for the sink tests.
#
#   eval "$(scripts/clickhouse.sh start)"   # stdout: export lines only; logs go to stderr
#   go test -race ./sink/...
#   scripts/clickhouse.sh stop
#
# The server is Debian's clickhouse-server (18.16, the only one installable here); it is
# installed with apt-get when missing. Every start writes its own config (loopback only,
# free ports for the native, HTTP and interserver protocols, time zone UTC) and a fresh
# data dir into the run dir, ${STUDIO_CLICKHOUSE_RUN_DIR:-$STUDIO_CACHE/run/clickhouse},
# so `stop` finds the server that `start` left running. Several servers can run side by
# side with different run dirs (the sink's outage test starts a private one).
#
#   pause   stop the server but keep its data, config and ports
#   resume  start it again from the same data on the same ports
#   addr    print the native-protocol address of the server in the run dir
set -euo pipefail

readonly READY_TIMEOUT_S=60
readonly PORT_ATTEMPTS=5

cache_dir=${STUDIO_CACHE:-$HOME/.cache/studio}
run_dir=${STUDIO_CLICKHOUSE_RUN_DIR:-$cache_dir/run/clickhouse}
pid_file=$run_dir/clickhouse.pid
log_file=$run_dir/clickhouse-server.log
err_file=$run_dir/clickhouse-server.err.log
out_file=$run_dir/stdout.log
config=$run_dir/config.xml
users=$run_dir/users.xml
ports_file=$run_dir/ports
data_dir=$run_dir/data

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	cat >&2 <<USAGE
usage: $0 start|stop|pause|resume|addr
  start   install clickhouse-server if missing, start it with a fresh data dir on free
          loopback ports and print an export line for STUDIO_TEST_CLICKHOUSE_ADDR;
          use: eval "\$($0 start)"
  stop    stop the server started from $run_dir and delete its data
  pause   stop that server but keep its data and ports (to simulate an outage)
  resume  start a paused server again on the same ports and data
  addr    print its native-protocol address (host:port)
USAGE
	exit 2
}

server_bin() {
	local b
	for b in clickhouse-server /usr/bin/clickhouse-server; do
		command -v "$b" 2>/dev/null && return 0
	done
	return 1
}

ensure_installed() {
	server_bin >/dev/null && command -v clickhouse-client >/dev/null && return 0
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "clickhouse-server is not installed and this is not root: install clickhouse-server and clickhouse-client with apt-get"
		sudo=(sudo)
	fi
	log "installing clickhouse-server and clickhouse-client with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	# The package lists may be missing (fresh image) or stale (old candidate version).
	if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends clickhouse-server clickhouse-client >&2; then
		"${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed; check the network and the apt sources"
		"${sudo[@]}" apt-get install -y -q --no-install-recommends clickhouse-server clickhouse-client >&2 ||
			die "apt-get install clickhouse-server clickhouse-client failed; see the output above"
	fi
	server_bin >/dev/null || die "clickhouse-server is still not on PATH after apt-get install"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on right now. Someone may
# take it before ClickHouse binds, so start() retries when the server does not come up.
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

# is_ours succeeds when pid is alive and is a clickhouse server using our config, so a
# recycled pid or another engineer's server is never signalled.
is_ours() {
	local pid=$1 cmd
	kill -0 "$pid" 2>/dev/null || return 1
	cmd=$(ps -p "$pid" -o args= 2>/dev/null) || return 1
	[[ $cmd == *clickhouse* && $cmd == *"$config"* ]]
}

ping_ok() {
	local url="http://127.0.0.1:$1/ping"
	if command -v curl >/dev/null; then
		[[ $(curl -fsS --max-time 2 "$url" 2>/dev/null) == Ok* ]]
	else
		python3 -c 'import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).read().startswith(b"Ok") else 1)' "$url" 2>/dev/null
	fi
}

# wait_ready polls /ping. A taken port makes the server exit without a word on stdout,
# so a dead pid is checked on every round. Returns 1 when the server died, 2 on timeout.
wait_ready() {
	local pid=$1 http_port=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || return 1
		ping_ok "$http_port" && return 0
		sleep 0.2
	done
	return 2
}

kill_pid() {
	local pid=$1 _
	is_ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		is_ours "$pid" || return 0
		sleep 0.1
	done
	log "ClickHouse (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		is_ours "$pid" || return 0
		sleep 0.1
	done
}

write_config() {
	local tcp=$1 http=$2 inter=$3
	mkdir -p "$data_dir/tmp" "$data_dir/user_files" "$data_dir/format_schemas"
	cat >"$config" <<XML
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse.sh for a throwaway test server; loopback only. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$log_file</log>
        <errorlog>$err_file</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    <interserver_http_port>$inter</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>512</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$data_dir/</path>
    <tmp_path>$data_dir/tmp/</tmp_path>
    <user_files_path>$data_dir/user_files/</user_files_path>
    <format_schema_path>$data_dir/format_schemas/</format_schema_path>
    <users_config>$users</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
	cat >"$users" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
	echo "$tcp $http $inter" >"$ports_file"
}

# launch starts the server from the config in the run dir and waits for /ping. Returns
# wait_ready's status.
launch() {
	local http_port=$1 bin pid status=0
	bin=$(server_bin)
	# Not --daemon: it returns 0 even when the server exits at once on a taken port.
	nohup "$bin" --config-file="$config" </dev/null >"$out_file" 2>&1 &
	pid=$!
	echo "$pid" >"$pid_file"
	wait_ready "$pid" "$http_port" || status=$?
	if ((status != 0)); then
		kill_pid "$pid"
		rm -f "$pid_file"
	fi
	return "$status"
}

print_tail() {
	local f
	for f in "$err_file" "$out_file"; do
		[[ -s $f ]] || continue
		log "last lines of $f:"
		tail -n 20 "$f" >&2 || true
	done
}

recorded_pid() {
	[[ -f $pid_file ]] || return 1
	local pid
	pid=$(<"$pid_file")
	is_ours "$pid" || return 1
	echo "$pid"
}

stop_process() {
	local pid
	if pid=$(recorded_pid); then
		log "stopping ClickHouse (pid $pid)"
		kill_pid "$pid"
	fi
	rm -f "$pid_file"
}

stop() {
	stop_process
	# Only ever delete what this script created.
	rm -rf "$data_dir" "$config" "$users" "$ports_file"
}

start() {
	ensure_installed
	mkdir -p "$run_dir"
	if [[ -f $pid_file || -d $data_dir ]]; then
		log "a previous ClickHouse from $run_dir is still recorded; stopping it first"
		stop
	fi
	local attempt tcp http inter status
	for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
		tcp=$(free_port) || die "found no free port on 127.0.0.1"
		http=$(free_port) || die "found no free port on 127.0.0.1"
		inter=$(free_port) || die "found no free port on 127.0.0.1"
		[[ $tcp != "$http" && $tcp != "$inter" && $http != "$inter" ]] || continue
		write_config "$tcp" "$http" "$inter"
		log "starting ClickHouse on 127.0.0.1:$tcp (native), :$http (HTTP); data $data_dir, log $log_file"
		status=0
		launch "$http" || status=$?
		if ((status == 0)); then
			log "ClickHouse ready (pid $(<"$pid_file")); connect with: clickhouse-client --host 127.0.0.1 --port $tcp; stop it with: $0 stop"
			printf 'export STUDIO_TEST_CLICKHOUSE_ADDR=%q\n' "127.0.0.1:$tcp"
			return 0
		fi
		if ((status == 2)); then
			print_tail
			stop
			die "ClickHouse was not ready after ${READY_TIMEOUT_S}s"
		fi
		if grep -qiE 'address already in use|bind' "$err_file" "$out_file" 2>/dev/null; then
			log "a port was taken before ClickHouse bound it (attempt $attempt of $PORT_ATTEMPTS); retrying"
			rm -rf "$data_dir" "$err_file"
			continue
		fi
		print_tail
		stop
		die "ClickHouse exited during start-up"
	done
	stop
	die "no free ports after $PORT_ATTEMPTS attempts"
}

pause() {
	[[ -f $ports_file ]] || die "no ClickHouse recorded in $run_dir; run $0 start first"
	stop_process
	log "ClickHouse paused; data kept in $data_dir"
}

resume() {
	[[ -f $ports_file && -f $config ]] || die "no ClickHouse recorded in $run_dir; run $0 start first"
	if recorded_pid >/dev/null; then
		log "ClickHouse is already running"
		return 0
	fi
	local tcp http inter status=0
	read -r tcp http inter <"$ports_file"
	launch "$http" || status=$?
	if ((status != 0)); then
		print_tail
		die "ClickHouse did not come back on 127.0.0.1:$tcp (is the port now taken?)"
	fi
	log "ClickHouse resumed on 127.0.0.1:$tcp (pid $(<"$pid_file"))"
}

addr() {
	[[ -f $ports_file ]] || die "no ClickHouse recorded in $run_dir"
	local tcp _
	read -r tcp _ <"$ports_file"
	echo "127.0.0.1:$tcp"
}

case ${1:-} in
start) start ;;
stop) stop ;;
pause) pause ;;
resume) resume ;;
addr) addr ;;
*) usage ;;
esac
