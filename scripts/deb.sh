#!/bin/sh
# deb.sh: build the Debian package from debian/ with dpkg-buildpackage, in a
# copy of the tree under out/deb (dpkg-buildpackage writes its results to
# the parent directory), check it with lintian (errors fail the build) and
# put the .deb (and its -dbgsym), the source package, .buildinfo and
# .changes into dist/. The source is built too so that lintian sees the
# Build-Depends.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
version=$(dpkg-parsechangelog -SVersion)
work=$root/out/deb
src=$work/signstar-$version
rm -rf "$work"
mkdir -p "$src" "$root/dist"
# The files a clean clone has, plus new ones not yet committed.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
	tar --exclude=./out --exclude=./dist --exclude=./bin -cf - . | tar -xf - -C "$src"
fi
# Go's caches of this machine: the build then needs no download (the Go
# module proxy is used only for modules missing from the cache).
export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"
export PATH="$(dirname "$(command -v go)"):$PATH"
# -d: the Go toolchain (go.mod needs 1.26) is the one on PATH, not a
# Debian package, so Build-Depends' golang-go cannot be checked by dpkg.
(cd "$src" && dpkg-buildpackage -us -uc -d)
deb=$work/signstar_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb
changes=$work/signstar_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).changes
echo "lintian $changes"
lintian --fail-on error --info "$changes" || { echo "deb.sh: lintian reports errors" >&2; exit 1; }
for f in "$work"/signstar*_${version}*; do
	[ -f "$f" ] && mv "$f" "$root/dist/"
done
rm -rf "$work"
echo "dist/$(basename "$deb")"
