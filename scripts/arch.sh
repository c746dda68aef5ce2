#!/bin/sh
# arch.sh: build packaging/arch/PKGBUILD with makepkg, as the unprivileged
# user nobody (makepkg refuses root), from make dist's tarball, into
# dist/signstar-VERSION-REL-ARCH.pkg.tar.zst.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
tarball=$(scripts/dist.sh | tail -n1)
user=${SIGNSTAR_BUILD_USER:-nobody}
work=$(mktemp -d /tmp/signstar-makepkg-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp packaging/arch/PKGBUILD "$tarball" "$work/"
mkdir -p "$work/home"
chown -R "$user" "$work"
chmod 0755 "$work"
go=$(dirname "$(command -v go)")
# --nodeps: go and make are Debian's here, not pacman's packages.
runuser -u "$user" -- env -i PATH="$go:/usr/bin:/bin" HOME="$work/home" \
	PKGEXT=.pkg.tar.zst BUILDDIR="$work/build" PKGDEST="$work" SRCDEST="$work" \
	sh -c "cd '$work' && makepkg --nodeps --noconfirm --clean"
for p in "$work"/signstar-*.pkg.tar.zst; do
	cp "$p" "$root/dist/"
	echo "dist/$(basename "$p")"
done
