# signstar. `make demo` and `make test` work on a fresh Debian machine: they
# install the Debian packages they need (as root, after apt-get update).

GO          ?= go
BIN         := bin/signstar
VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The binary is pure Go (CGO_ENABLED=0): the C runtime alone would cost every
# signing process 1 ms (BENCHMARKS.md). The tests still need cgo: -race, and
# the seccomp filter's drift test, which recompiles it with libseccomp.
BUILD_DEBS  := gcc pkg-config libseccomp-dev
# Real peers the tests and the demo talk to.
PEER_DEBS   := gnupg gpg-agent gpgconf scdaemon gpgv sqv sq pacman-package-manager makepkg libarchive-tools zstd xz-utils \
               openssh-server openssh-client pcscd libpcsclite1 vsmartcard-vpcd xorriso util-linux e2fsprogs \
               passwd procps swtpm
BENCH_DEBS  := time
# The shell completions' and the man pages' tests (in make test).
DOC_DEBS    := mandoc bash bash-completion zsh fish

.PHONY: all build deps bench-deps test lint unit demo bench fuzz clean

all: build

build: $(BIN)

$(BIN): FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/signstar
FORCE:

# deps installs whatever Debian packages are missing, and only then runs
# apt-get update once.
deps:
	@scripts/debs.sh $(BUILD_DEBS) $(PEER_DEBS) $(DOC_DEBS)

bench-deps:
	@scripts/debs.sh $(BUILD_DEBS) $(PEER_DEBS) $(BENCH_DEBS)

# test: formatting, vet, staticcheck, then every test with the race detector.
# Real peers are started by the tests themselves; with CI=true a missing peer
# fails the run instead of skipping.
test: deps lint unit

lint:
	@bad=$$(gofmt -l cmd internal test 2>/dev/null); if [ -n "$$bad" ]; then echo "gofmt: not formatted: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) -C third_party/piv-go vet ./...
	$(GO) run $(STATICCHECK) ./...

# Every test with the race detector (cgo), then the parts whose code differs
# without cgo (psx, the scripts' signstar) once more as the shipped binary is
# built: CGO_ENABLED=0.
unit:
	$(GO) test -race -timeout 12m ./...
	$(GO) -C third_party/piv-go test -race -timeout 5m ./...
	CGO_ENABLED=0 $(GO) test -timeout 8m ./cmd/signstar ./internal/sandbox/... ./internal/backend/... ./internal/pivemu

demo: deps build
	@scripts/demo.sh

bench: bench-deps build
	@scripts/bench.sh

# A short run of every fuzz target (each also runs its seed corpus in `make test`).
fuzz:
	@scripts/fuzz.sh 30s

clean:
	rm -rf bin
