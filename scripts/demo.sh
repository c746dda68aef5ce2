#!/bin/sh
# make demo: sign the samples in testdata/ through a real, throwaway sshd,
# verify them with gpgv and pacman, show the audit records, clean up. Needs root
# (sshd, the signer user) and Debian's openssh-server, openssh-client, gpgv, pacman-package-manager.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it starts sshd and creates the signer user): sudo make demo" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "==> CGO_ENABLED=0 go build ./cmd/signstar"
CGO_ENABLED=0 go build -o "$work/signstar" ./cmd/signstar
samples=$(find testdata -maxdepth 2 -type f \( -name '*.pkg.tar.*' -o -name '*.db.tar.*' -o -name '*.db' \) ! -name '*.sig' 2>/dev/null | sort)
if [ -z "$samples" ]; then
	printf 'signstar demo artifact\n' > "$work/sample.txt"
	samples="$work/sample.txt"
fi
# shellcheck disable=SC2086
go run ./internal/testsupport/sshtest/cmd/demo -signstar "$work/signstar" $samples
