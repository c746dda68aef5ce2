# signstar. `make demo` and `make test` work on a fresh Debian machine: they
# install the Debian packages they need (as root, after apt-get update).

GO          ?= go
BIN         := bin/signstar
CLIENT_BIN  := bin/signstar-client
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The binary is pure Go (CGO_ENABLED=0): the C runtime alone would cost every
# signing process 1 ms (BENCHMARKS.md). The tests still need cgo: -race, and
# the seccomp filter's drift test, which recompiles it with libseccomp.
BUILD_DEBS  := gcc pkg-config libseccomp-dev
# Real peers the tests and the demo talk to.
PEER_DEBS   := gnupg gpg-agent gpgconf scdaemon gpgv sqv sq pacman-package-manager makepkg libarchive-tools zstd xz-utils \
               gzip bzip2 lz4 lzip lzop ncompress lrzip \
               openssh-server openssh-client pcscd libpcsclite1 vsmartcard-vpcd xorriso util-linux e2fsprogs \
               passwd procps swtpm rsyslog apt
BENCH_DEBS  := time
# The shell completions' and the man pages' tests (in make test).
DOC_DEBS    := mandoc bash bash-completion zsh fish
# make deb and make test-packaging: Debian's packaging tools, and makepkg's
# fakeroot for the Arch package.
PACKAGING_DEBS := dpkg-dev debhelper lintian fakeroot makepkg pacman-package-manager libarchive-tools zstd

# make install: PREFIX=/usr for a system package; DESTDIR stages it.
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/signstar
SYSCONFDIR  ?= /etc
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

.PHONY: all build deps bench-deps test lint unit demo bench fuzz clean install deb dist arch test-packaging packaging-deps

all: build

build: $(BIN) $(CLIENT_BIN)

$(BIN): FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/signstar

# The repository server's side: pure Go too.
$(CLIENT_BIN): FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CLIENT_BIN) ./cmd/signstar-client
FORCE:

# deps installs whatever Debian packages are missing, and only then runs
# apt-get update once.
deps:
	@scripts/debs.sh $(BUILD_DEBS) $(PEER_DEBS) $(DOC_DEBS)

packaging-deps:
	@scripts/debs.sh $(BUILD_DEBS) $(PEER_DEBS) $(DOC_DEBS) $(PACKAGING_DEBS)

bench-deps:
	@scripts/debs.sh $(BUILD_DEBS) $(PEER_DEBS) $(BENCH_DEBS)

# test: formatting, vet, staticcheck, then every test with the race detector.
# Real peers are started by the tests themselves; with CI=true a missing peer
# fails the run instead of skipping.
test: deps lint unit

lint:
	@bad=$$(gofmt -l cmd internal test 2>/dev/null); if [ -n "$$bad" ]; then echo "gofmt: not formatted: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags packaging ./test/packaging
	$(GO) -C third_party/piv-go vet ./...
	$(GO) run $(STATICCHECK) ./...

# Every test with the race detector (cgo), then the parts whose code differs
# without cgo (psx, the scripts' signstar) once more as the shipped binary is
# built: CGO_ENABLED=0.
unit:
	$(GO) test -race -timeout 12m ./...
	$(GO) -C third_party/piv-go test -race -timeout 5m ./...
	CGO_ENABLED=0 $(GO) test -timeout 8m ./cmd/signstar ./cmd/signstar-client ./internal/sandbox/... ./internal/backend/... ./internal/testsupport/pivemu

demo: deps build
	@scripts/demo.sh

bench: bench-deps build
	@scripts/bench.sh

# A short run of every fuzz target (each also runs its seed corpus in `make test`).
fuzz:
	@scripts/fuzz.sh 30s

# install: the binary, the man pages, the completions, the example
# configuration (only where none exists yet: an operator's is never
# overwritten) and, as documentation only, the example configuration and the
# sshd drop-in. Nothing is enabled: the drop-in goes to DOCDIR/examples, not
# to /etc/ssh, and no user is created (README, Setting up a signing host).
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(DOCDIR)/examples/sshd_config.d $(DESTDIR)$(SYSCONFDIR)/signstar
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/signstar
	install -m 0755 $(CLIENT_BIN) $(DESTDIR)$(BINDIR)/signstar-client
	install -m 0644 docs/man/signstar.1 $(DESTDIR)$(MANDIR)/man1/signstar.1
	install -m 0644 docs/man/signstar.toml.5 $(DESTDIR)$(MANDIR)/man5/signstar.toml.5
	install -m 0644 docs/man/signstar-client.1 $(DESTDIR)$(MANDIR)/man1/signstar-client.1
	install -m 0644 completions/signstar.bash $(DESTDIR)$(BASHCOMPDIR)/signstar
	install -m 0644 completions/_signstar $(DESTDIR)$(ZSHCOMPDIR)/_signstar
	install -m 0644 completions/signstar.fish $(DESTDIR)$(FISHCOMPDIR)/signstar.fish
	install -m 0644 configs/config.toml $(DESTDIR)$(DOCDIR)/examples/config.toml
	install -m 0644 configs/sshd_config.d/signstar.conf $(DESTDIR)$(DOCDIR)/examples/sshd_config.d/signstar.conf
	install -m 0644 README.md docs/CONTRACT.md $(DESTDIR)$(DOCDIR)/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/signstar/config.toml ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/signstar/config.toml"; \
	else \
		install -m 0644 configs/config.toml $(DESTDIR)$(SYSCONFDIR)/signstar/config.toml; \
	fi

# deb: the Debian package, built by dpkg-buildpackage from debian/ in a copy
# of the tree (dpkg-buildpackage writes to the parent directory), checked
# by lintian, into dist/.
deb:
	@scripts/debs.sh $(PACKAGING_DEBS)
	@scripts/deb.sh

# dist: dist/signstar-VERSION.tar.gz, the source with its Go modules
# vendored (the Arch package's source); arch: packaging/arch/PKGBUILD built
# from it by makepkg as the unprivileged user nobody, into dist/.
dist:
	@scripts/dist.sh

arch:
	@scripts/debs.sh $(PACKAGING_DEBS)
	@scripts/arch.sh

# test-packaging: the slow packaging tests (make deb, dpkg -i, the README's
# setup as a script, a signature through sshd, doctor, dpkg --purge; the
# PKGBUILD built by makepkg and installed by pacman into a throwaway root).
test-packaging: packaging-deps
	$(GO) test -tags packaging -count=1 -timeout 30m -v ./test/packaging

clean:
	rm -rf bin out dist
