# The two commands a new user needs:
#   make up    fetch models and the ONNX Runtime library (first run), build, run everything
#   make test  install and start MinIO and ClickHouse, fetch models, run every test
.PHONY: up test build fetch clean faults

STUDIO_FLAGS ?=

up: build
	bin/studio up $(STUDIO_FLAGS)

test:
	scripts/test.sh

build:
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

clean:
	rm -rf bin
