#!/bin/sh
# fuzz.sh TIME: run each fuzz target for TIME, in signstar's packages and in
# the vendored piv-go module (its pcscd reply decoders).
set -eu
t=${1:-30s}
for mod in . third_party/piv-go; do
	for pkg in $(go -C "$mod" list ./...); do
		dir=$(go -C "$mod" list -f '{{.Dir}}' "$pkg")
		for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
			echo "== $pkg $f"
			# -fuzzminimizetime: minimizing a new input can stall for minutes here.
			go -C "$mod" test "$pkg" -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 5s
		done
	done
done
