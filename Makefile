# The two commands a new user needs:
#   make up    fetch models and the ONNX Runtime library (first run), build, run everything
#   make test  install and start MinIO and ClickHouse, fetch models, run every test
.PHONY: up test build fetch clean

STUDIO_FLAGS ?=

up: build
	bin/studio up $(STUDIO_FLAGS)

test:
	scripts/test.sh

build:
	go build -o bin/studio ./cmd/studio

fetch: build
	bin/studio fetch runtime models photos

clean:
	rm -rf bin
