# The two commands a new user needs:
#   make up    fetch models and the ONNX Runtime library (first run), build, run everything
#   make test  install and start MinIO and ClickHouse, fetch models, run every test
.PHONY: up test build fetch clean faults chaos

STUDIO_FLAGS ?=

up: build
	bin/studio up $(STUDIO_FLAGS)

test:
	scripts/test.sh

build:
	scripts/deps.sh
	go build -o bin/studio ./cmd/studio

fetch: build
	bin/studio fetch runtime models photos

# The long form of the cluster fault test (the short form runs in `make test`): an
# embedded 3-node cluster, a worker SIGKILLed and the stream leader restarted per round.
FAULTS_JOBS ?= 3000
FAULTS_ROUNDS ?= 5
faults:
	STUDIO_FAULTS_JOBS=$(FAULTS_JOBS) STUDIO_FAULTS_ROUNDS=$(FAULTS_ROUNDS) \
		go test -count=1 -timeout 20m -run 'TestClusterFaults|TestCluster.*ThroughAnother' -v ./streams/ ./internal/topology/

# The long form of the separate-process fault suite (the short form, 8 jobs and one
# round per scenario, runs in `make test`): a 3-node nats-server cluster, MinIO,
# ClickHouse with `studio sink`, `studio ingest` and one `studio worker` per stage (two
# for inference); each scenario (stage-kill, leader-kill, follower-kill, partition,
# net-split, minio, clickhouse, disk-full, slow-stage, then all of them together:
# CHAOS_SCENARIOS=every) submits CHAOS_JOBS upscale jobs over CHAOS_ROUNDS rounds of
# its faults. It fails if any job fails, is stuck or has two results, or an analytics
# row is lost or doubled; CHAOS_TABLE collects the rows (RELIABILITY.md).
CHAOS_SCENARIOS ?= every
CHAOS_JOBS ?= 130
CHAOS_ROUNDS ?= 3
CHAOS_TABLE ?= bin/chaos-table.md
chaos:
	@mkdir -p bin
	STUDIO_CHAOS_SCENARIOS=$(CHAOS_SCENARIOS) STUDIO_CHAOS_JOBS=$(CHAOS_JOBS) STUDIO_CHAOS_ROUNDS=$(CHAOS_ROUNDS) STUDIO_CHAOS_TABLE=$(abspath $(CHAOS_TABLE)) \
		go test -count=1 -timeout 60m -run 'TestChaos$$' -v ./cmd/studio/

clean:
	rm -rf bin
