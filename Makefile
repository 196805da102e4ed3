# Gatehouse: make run serves the portal, make test runs every test.
GO      ?= go
BIN     := bin/gatehouse
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all generate build run test test-short lint bench fuzz clean

all: build

generate:
	$(GO) tool templ generate

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

run: build
	./$(BIN) serve

# Every test: unit, HTTP, command line and browser end-to-end, under the race detector.
test: lint
	$(GO) test -race -timeout 20m ./...

# The quick loop while editing: no race detector, no browser.
test-short:
	$(GO) test -short -timeout 10m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool templ fmt -fail . >/dev/null
	@before=$$(git status --porcelain -- '*_templ.go'); $(GO) tool templ generate >/dev/null 2>&1; \
	 after=$$(git status --porcelain -- '*_templ.go'); \
	 if [ "$$before" != "$$after" ]; then echo "generated templ files are stale: run make generate and commit"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./handlers/ | grep ^Fuzz); do \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 30s ./handlers/ || exit 1; done

clean:
	rm -rf bin
