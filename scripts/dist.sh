#!/bin/sh
# dist.sh: dist/signstar-VERSION.tar.gz, the source tree (the files a clean
# clone has, plus new ones not yet committed) with its Go modules vendored,
# for the Arch PKGBUILD. VERSION is debian/changelog's, which
# packaging/arch/PKGBUILD's pkgver must equal.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
version=$(sed -n '1s/^signstar (\([^)]*\)).*/\1/p' debian/changelog)
pkgver=$(sed -n 's/^pkgver=//p' packaging/arch/PKGBUILD)
if [ "$version" != "$pkgver" ]; then
	echo "dist.sh: debian/changelog says $version, packaging/arch/PKGBUILD pkgver=$pkgver: make them agree" >&2
	exit 1
fi
work=$root/out/dist
src=$work/signstar-$version
rm -rf "$work"
mkdir -p "$src" "$root/dist"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
	tar --exclude=./out --exclude=./dist --exclude=./bin -cf - . | tar -xf - -C "$src"
fi
(cd "$src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod vendor)
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$root/dist/signstar-$version.tar.gz" "signstar-$version"
rm -rf "$work"
echo "dist/signstar-$version.tar.gz"
