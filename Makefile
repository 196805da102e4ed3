# Gatehouse: make run serves the portal, make test runs every test.
GO      ?= go
BIN     := bin/gatehouse
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all generate build run test test-short lint bench fuzz clean axe screenshots

all: build

generate:
	$(GO) tool templ generate

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

run: build
	./$(BIN) serve

# Every test: unit, HTTP, command line and browser end-to-end, under the race detector.
test: lint axe
	$(GO) test -race -timeout 20m ./...

# axe-core for the browser tests' accessibility checks, installed from its lock file once, so
# make test works on a fresh clone. Without npm the checks are skipped (and fail under CI=true).
axe:
	@if [ ! -d e2e/axe/node_modules ]; then \
	  if command -v npm >/dev/null 2>&1; then npm ci --prefix e2e/axe --no-audit --no-fund; \
	  else echo "npm not found: browser tests will skip their accessibility checks"; fi; \
	fi

# Rewrites the PNGs in docs/screenshots from a freshly seeded portal; commit the result.
screenshots:
	GATEHOUSE_SCREENSHOTS=docs/screenshots $(GO) test ./e2e -run TestScreenshots -count=1

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

# Load test of the real binary against an echo hello server, with wrk when it is installed
# (see README: Benchmarks), and the handlers' benchmarks its targets read; then the other
# in-process micro-benchmarks. About three minutes; go run ./bench -h lists its knobs.
bench:
	$(GO) run ./bench
	$(GO) test -run '^$$' -bench . -benchmem ./auth/ ./db/ ./views/

# Each fuzz target runs for FUZZTIME (CI uses a few seconds); seeds live in testdata/fuzz.
FUZZTIME ?= 30s
FUZZ_PKGS := ./auth ./handlers ./views ./cmd/gatehouse
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
