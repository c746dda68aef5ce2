#!/bin/sh
# make bench: signstar against gpg --detach-sign and sq sign --detached, and
# against a plain SHA-256 pass (the limit), whole processes, side by side.
#
#   scripts/bench.sh               full run (1 KiB, 64 MiB, 1 GiB; ssh 256 MiB)
#   BENCH_QUICK=1 scripts/bench.sh short run (1 KiB, 64 MiB; ssh 64 MiB)
#   BENCH_WRITE=0 ...              print only, leave BENCHMARKS.md alone
#
# Every tool signs with the same GnuPG-made key (testdata/keys), reads the
# same pseudo-random bytes on stdin (from the file, then through `cat f |`),
# and its first signature is checked with sqv before anything is timed.
# Runs are interleaved round by round (internal/testsupport/bench/cmd/benchtool), the
# figures are medians. The generated part of BENCHMARKS.md is replaced.
# Needs: gnupg, gpg-agent, sq, sqv, time (Debian); root for the ssh part.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
quick=${BENCH_QUICK:-0}

work=$(mktemp -d /var/tmp/signstar-bench.XXXXXX)
export GNUPGHOME="$work/gnupg"
cleanup() {
	gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '==> %s\n' "$*" >&2; }

[ -x bin/signstar ] || CGO_ENABLED=0 go build -trimpath -o bin/signstar ./cmd/signstar
[ -x bin/signstar-client ] || CGO_ENABLED=0 go build -trimpath -o bin/signstar-client ./cmd/signstar-client
signstar="$repo/bin/signstar"
say "building the benchmark helpers"
go build -o "$work/benchtool" ./internal/testsupport/bench/cmd/benchtool
go build -o "$work/sha256pass" ./internal/testsupport/bench/cmd/sha256pass
bt="$work/benchtool"

if [ "$quick" = 1 ]; then
	sizes="1KiB:1024 64MiB:67108864"
	ssh_size=67108864 ssh_label=64MiB ssh_runs=3
	tar_members=50 tar_runs=1
else
	sizes="1KiB:1024 64MiB:67108864 1GiB:1073741824"
	ssh_size=268435456 ssh_label=256MiB ssh_runs=11
	tar_members=200 tar_runs=3
fi
runs_for() {
	case $1 in
	1KiB) [ "$quick" = 1 ] && echo 15 || echo 101 ;;
	64MiB) [ "$quick" = 1 ] && echo 5 || echo 9 ;;
	*) echo 5 ;;
	esac
}

say "generating inputs in $work"
for s in $sizes; do
	"$bt" gen -size "${s#*:}" -out "$work/in-${s%%:*}"
done

# Keys, modes as signstar insists on (0600), and one config per key. The
# audit log is on the same disk as the inputs, fsynced per signature.
mkdir -m 700 "$work/keys" "$GNUPGHOME"
for k in ed25519 rsa3072 protected; do
	cp "testdata/keys/$k.key" "$work/keys/$k.key"
	chmod 600 "$work/keys/$k.key"
done
cp testdata/keys/protected.pass "$work/keys/protected.pass"
chmod 600 "$work/keys/protected.pass"

config() { # NAME KEY MODE [PASSFILE [RATE]]
	{
		printf '[audit]\npath = "%s/audit-%s.jsonl"\n\n[sandbox]\nmode = "%s"\n\n' "$work" "$1" "$3"
		printf '[[profile]]\nname = "bench"\nbackend = "keyfile"\nkey = "%s"\n' "$2"
		[ -n "${4:-}" ] && printf 'passphrase_file = "%s"\n' "$4"
		[ -n "${5:-}" ] && printf 'rate = "%s"\n' "$5"
		printf 'max_size = "8GiB"\nkinds = ["any"]\nusers = ["%s"]\n' "$(id -un)"
	} >"$work/$1.toml"
}
mode=enforce
config probe "$work/keys/ed25519.key" enforce
if ! "$signstar" --config "$work/probe.toml" sandbox check >/dev/null 2>&1; then
	mode=best-effort
	say "sandbox enforce cannot be met on this kernel: measuring with best-effort"
fi
for k in ed25519 rsa3072; do config "$k" "$work/keys/$k.key" "$mode"; done
config protected "$work/keys/protected.key" "$mode" "$work/keys/protected.pass"
# The rate check against an empty log and against one of a million records
# (issue 12): a rated profile, its window full of refusals.
for l in rateempty ratebig; do config "$l" "$work/keys/ed25519.key" "$mode" "" "1000/30d"; done
biglog_records=1000000
[ "$quick" = 1 ] && biglog_records=200000
say "writing a $biglog_records-record audit log and its index"
# 1% of it votes of a quorum profile (issue 20), the newest two a quorum for
# the 1 KiB input: the quorum request below is a publisher's, signed.
biglog_votes=$((biglog_records / 100))
vote_digest="sha256:$(sha256sum <"$work/in-1KiB" | cut -d' ' -f1)"
"$bt" biglog -records "$biglog_records" -signed 10 -votes "$biglog_votes" -vote-digest "$vote_digest" -voters builder1,builder2,builder3 \
	-key "$work/keys/ed25519.key" -profile bench -out "$work/audit-ratebig.jsonl" 2>"$work/biglog.txt"
cat "$work/biglog.txt" >&2
# The quorum check against that log, and plain requests against an empty
# one and against it: same key, same sandbox, none with a rate.
config plainempty "$work/keys/ed25519.key" "$mode"
config plainbig "$work/keys/ed25519.key" "$mode"
sed -i "s|$work/audit-plainbig.jsonl|$work/audit-ratebig.jsonl|" "$work/plainbig.toml"
{
	printf '[audit]\npath = "%s/audit-ratebig.jsonl"\n\n[sandbox]\nmode = "%s"\n\n' "$work" "$mode"
	printf '[[profile]]\nname = "bench"\nbackend = "keyfile"\nkey = "%s"\nmax_size = "8GiB"\nkinds = ["any"]\n' "$work/keys/ed25519.key"
	printf 'users = ["%s", "builder1", "builder2", "builder3"]\n' "$(id -un)"
	printf 'quorum = 2\nvoters = ["builder1", "builder2", "builder3"]\nquorum_window = "2h"\npublishers = ["%s"]\n' "$(id -un)"
} >"$work/quorumbig.toml"

say "importing the keys into a throwaway GnuPG home, warming gpg-agent"
gpg --batch --quiet --import "$work/keys/ed25519.key" "$work/keys/rsa3072.key" 2>/dev/null
fpr() { gpg --with-colons --show-keys "testdata/keys/$1.pub" | awk -F: '/^fpr/ { print $10; exit }'; }
fpr_ed25519=$(fpr ed25519)
fpr_rsa3072=$(fpr rsa3072)
gpgconf --launch gpg-agent

cmds() { # KEY: the commands compared for that key
	key=$1 fp=$2
	echo "signstar=$signstar --config $work/$key.toml sign"
	echo "gpg=gpg --batch --no-tty --detach-sign --no-armor --local-user $fp --output -"
	echo "sq=sq sign --detached --signer-key $work/keys/$key.key"
}

say "checking every tool's signature with sqv"
for k in ed25519 rsa3072; do
	eval "fp=\$fpr_$k"
	cmds "$k" "$fp" | while IFS= read -r c; do
		name=${c%%=*}
		# shellcheck disable=SC2086
		${c#*=} <"$work/in-1KiB" >"$work/check-$name.sig"
		if ! sqv --keyring "testdata/keys/$k.pub" "$work/check-$name.sig" "$work/in-1KiB" >/dev/null 2>&1; then
			echo "bench: $name's $k signature does not verify with sqv" >&2
			exit 1
		fi
	done
done

results="$work/results.tsv"
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for s in $sizes; do
	label=${s%%:*}
	for how in file pipe; do
		flag=
		[ "$how" = pipe ] && flag=-pipe
		say "timing $label from a $how ($(runs_for "$label") runs each)"
		set --
		while IFS= read -r c; do set -- "$@" "$c"; done <<EOF
$(cmds ed25519 "$fpr_ed25519")
sha256pass=$work/sha256pass
sha256sum=sha256sum
EOF
		"$bt" time -runs "$(runs_for "$label")" -in "$work/in-$label" $flag -label "$label-$how" "$@" | tee -a "$results" >&2
	done
done

say "timing 1 KiB with RSA 3072"
set --
while IFS= read -r c; do set -- "$@" "$c"; done <<EOF
$(cmds rsa3072 "$fpr_rsa3072")
EOF
"$bt" time -runs "$(runs_for 1KiB)" -in "$work/in-1KiB" -label rsa3072-1KiB-file "$@" | tee -a "$results" >&2

say "timing 1 KiB with a rate, empty log vs $biglog_records records"
"$bt" time -runs "$(runs_for 1KiB)" -in "$work/in-1KiB" -label rate-1KiB-file \
	"empty-log=$signstar --config $work/rateempty.toml sign" \
	"big-log=$signstar --config $work/ratebig.toml sign" | tee -a "$results" >&2

say "timing 1 KiB: a quorum check against $biglog_records records vs a plain request"
"$bt" time -runs "$(runs_for 1KiB)" -in "$work/in-1KiB" -label quorum-1KiB-file \
	"plain=$signstar --config $work/plainempty.toml sign" \
	"plain-big-log=$signstar --config $work/plainbig.toml sign" \
	"quorum=$signstar --config $work/quorumbig.toml sign" | tee -a "$results" >&2

# audit verify over the big log (issue 15): chain, signatures, tree and
# notations, one pass; records per second and peak RSS.
say "audit verify over the $biglog_records-record log"
t0=$(date +%s.%N)
/usr/bin/time -v "$signstar" audit verify "$work/audit-ratebig.jsonl" >"$work/verify.txt" 2>"$work/time.txt"
t1=$(date +%s.%N)
verify_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
verify_cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { print u + s }' "$work/time.txt")
verify_rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
/usr/bin/time -v "$signstar" --config "$work/ratebig.toml" sign <"$work/in-1KiB" 2>"$work/time.txt" >/dev/null
biglog_sign_rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")

say "timing the S2K of a passphrase-protected key (GnuPG's iterated+salted default)"
"$bt" time -runs "$(runs_for 1KiB)" -in "$work/in-1KiB" -label s2k-1KiB-file \
	"unprotected=$signstar --config $work/ed25519.toml sign" \
	"protected=$signstar --config $work/protected.toml sign" | tee -a "$results" >&2
s2k_count=$(gpg --list-packets <testdata/keys/protected.key 2>/dev/null | awk '/protect count/ { print $3; exit }')

say "peak RSS with /usr/bin/time -v (one run per tool and size, from the file)"
rss="$work/rss.tsv"
: >"$rss"
for s in $sizes; do
	label=${s%%:*}
	while IFS= read -r c; do
		# shellcheck disable=SC2086
		/usr/bin/time -v ${c#*=} <"$work/in-$label" 2>"$work/time.txt" >/dev/null
		kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
		printf '%s\t%s\t%s\n' "$label" "${c%%=*}" "$kb" >>"$rss"
	done <<EOF
$(cmds ed25519 "$fpr_ed25519")
sha256pass=$work/sha256pass
EOF
	cat "$work/in-$label" | /usr/bin/time -v "$signstar" --config "$work/ed25519.toml" sign 2>"$work/time.txt" >/dev/null
	kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
	printf '%s\tsignstar (pipe)\t%s\n' "$label" "$kb" >>"$rss"
done

# sign --tar with 1,000 members (issue 16): signstar holds a signature and a
# record per member until the archive ends, nothing of their bodies.
say "peak RSS of sign --tar over 1,000 members of 100 KiB"
"$bt" targen -members 1000 -size 102400 -out "$work/tar-1000.tar"
/usr/bin/time -v "$signstar" --config "$work/ed25519.toml" sign --tar <"$work/tar-1000.tar" 2>"$work/time.txt" >"$work/tar-1000.sigs"
tar_rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt")
tar_sigs=$(tar -tf "$work/tar-1000.sigs" | wc -l)
rm -f "$work/tar-1000.tar"

ssh_note=
if [ "$(id -u)" = 0 ]; then
	say "ssh: $ssh_label signed through a throwaway sshd vs ssh cat > /dev/null ($ssh_runs runs each)"
	"$bt" gen -size "$ssh_size" -out "$work/in-ssh"
	"$bt" ssh -signstar "$signstar" -in "$work/in-ssh" -runs "$ssh_runs" -sandbox "$mode" | tee -a "$results" >&2
	# What holding the log's lock from the tree root through signing to
	# the append costs 32 concurrent signers (issue 15): the binary from
	# before the notation (the lock taken for the append only) against this
	# one, each in an enclave of its own, rounds interleaved.
	base=$(git log --format=%H --grep='every signature carries the hashed, non-critical notation' | tail -1)
	if [ -n "$base" ]; then
		say "ssh: 32 concurrent 1 KiB signers, lock for the append only ($(git rev-parse --short "$base^")) vs across signing"
		mkdir "$work/before"
		git archive "$base^" | tar -x -C "$work/before"
		(cd "$work/before" && CGO_ENABLED=0 go build -trimpath -o "$work/signstar-before" ./cmd/signstar)
		for k in ed25519 rsa3072; do
			"$bt" sshpar -signstar "before=$work/signstar-before" -signstar "after=$signstar" -in "$work/in-1KiB" -n 32 \
				-runs "$ssh_runs" -key "testdata/keys/$k.key" -pub "testdata/keys/$k.pub" -sandbox "$mode" -label "sshpar-$k" | tee -a "$results" >&2
		done
	fi
	say "ssh: $tar_members members of 100 KiB: one sign --tar session vs one sign session each, and vs cat > /dev/null ($tar_runs runs each)"
	"$bt" tarssh -signstar "$signstar" -members "$tar_members" -size 102400 -runs "$tar_runs" -sandbox "$mode" | tee -a "$results" >&2
	say "ssh: signstar-client sign of 1 file and of $tar_members files of 100 KiB vs the bare ssh sessions ($tar_runs runs each)"
	"$bt" client -signstar "$signstar" -client "$repo/bin/signstar-client" -members "$tar_members" -size 102400 -runs "$tar_runs" -sandbox "$mode" | tee -a "$results" >&2
else
	ssh_note="not measured: the ssh part needs root (it starts sshd and manages the signer user)"
	say "skipping ssh: $ssh_note"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The report: markdown, ratios first.
report="$work/report.md"
{
	echo "<!-- bench:begin: generated by scripts/bench.sh; edit outside these markers -->"
	echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) by \`make bench\`$([ "$quick" = 1 ] && echo ' with BENCH_QUICK=1')."
	echo
	echo "- CPU: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores$(grep -qw sha_ni /proc/cpuinfo && echo ', SHA extensions (sha_ni)'); kernel $(uname -r)"
	echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after"
	echo "- sandbox mode: $mode; key: Ed25519 (testdata/keys/ed25519.key) unless named; hash SHA-256"
	echo "- $(gpg --version | head -1), $(sq --version 2>&1 | head -1), $(go version | cut -d' ' -f3)"
	echo
	echo "Median wall time of the whole process (pipe: of \`cat f | tool\`), as a ratio."
	echo "Large inputs: x = time / sha256pass (a single crypto/sha256 pass; lower is better, 1.00 is the limit)."
	echo "1 KiB: x = time / gpg --detach-sign with a warm agent."
	echo
	for s in $sizes; do
		label=${s%%:*}
		for how in file pipe; do
			awk -F'\t' -v l="$label-$how" -v size="$label" '
				$1 == l { name[++n] = $2; med[$2] = $4; runs = $3 }
				END {
					base = size == "1KiB" ? "gpg" : "sha256pass"
					printf "\n**%s, %s** (%d runs; ratio to %s)\n\n| tool | x | median ms |\n|---|---|---|\n", size, substr(l, length(size) + 2), runs, base
					for (i = 1; i <= n; i++)
						printf "| %s | %.2f | %.1f |\n", name[i], med[name[i]] / med[base], med[name[i]] * 1000
				}' "$results"
		done
	done
	awk -F'\t' '
		$1 == "rsa3072-1KiB-file" { name[++n] = $2; med[$2] = $4; runs = $3 }
		END {
			printf "\n**1KiB, file, RSA 3072** (%d runs; ratio to gpg)\n\n| tool | x | median ms |\n|---|---|---|\n", runs
			for (i = 1; i <= n; i++) printf "| %s | %.2f | %.1f |\n", name[i], med[name[i]] / med["gpg"], med[name[i]] * 1000
		}' "$results"
	awk -F'\t' -v count="$s2k_count" '
		$1 == "s2k-1KiB-file" { med[$2] = $4 }
		END {
			printf "\n**S2K per session**: a passphrase-protected Ed25519 key (iterated+salted S2K, SHA-1, count %s, as GnuPG exports it) costs %.1f ms more per signing process than the same kind of key unprotected (%.1f vs %.1f ms median, x %.2f).\n", count, (med["protected"] - med["unprotected"]) * 1000, med["protected"] * 1000, med["unprotected"] * 1000, med["protected"] / med["unprotected"]
		}' "$results"
	awk -F'\t' -v recs="$biglog_records" -v gen="$(sed 's/^biglog: //' "$work/biglog.txt")" '
		$1 == "rate-1KiB-file" { med[$2] = $4; runs = $3 }
		END {
			printf "\n**Rate check, 1 KiB** (%d runs each, interleaved; profile rate 1000/30d): against a log of %d records in the window (refusals from 250 clients, 10 signatures, 1%% votes of a quorum profile; %s) x %.3f of against an empty log (%.1f vs %.1f ms median).\n", runs, recs, gen, med["big-log"] / med["empty-log"], med["big-log"] * 1000, med["empty-log"] * 1000
		}' "$results"
	awk -F'\t' -v recs="$biglog_records" -v votes="$biglog_votes" '
		$1 == "quorum-1KiB-file" { med[$2] = $4; runs = $3 }
		END {
			printf "\n**Quorum check, 1 KiB** (%d runs each, interleaved): a publisher'"'"'s request for bytes with a quorum (2 of 3 voters, quorum_window 2h) against the log of %d records above (%d votes over 29 days: the count reads about %d within the window and 16 before it) x %.3f of a plain request against an empty log, x %.3f of one against the same log (%.1f vs %.1f and %.1f ms median).\n", runs, recs, votes, votes * 2 / (29 * 24), med["quorum"] / med["plain"], med["quorum"] / med["plain-big-log"], med["quorum"] * 1000, med["plain"] * 1000, med["plain-big-log"] * 1000
		}' "$results"
	awk -v recs="$biglog_records" -v s="$verify_s" -v cpu="$verify_cpu" -v kb="$verify_rss" -v skb="$biglog_sign_rss" 'BEGIN {
		printf "\n**audit verify, %d records** (chain, signatures, tree, notations; one process): %.1f s wall, %.1f s CPU: %.0f records/s of wall time, %.0f records/s of CPU time; peak RSS %.1f MiB. A 1 KiB signature against that log peaks at %.1f MiB.\n", recs, s, cpu, recs / s, recs / cpu, kb / 1024, skb / 1024
	}'
	echo
	echo "**Peak RSS, /usr/bin/time -v** (one run each, from the file unless named; gpg's figure leaves out gpg-agent, which holds the key and signs)"
	echo
	echo "| input | tool | MiB |"
	echo "|---|---|---|"
	awk -F'\t' '{ printf "| %s | %s | %.1f |\n", $1, $2, $3 / 1024 }' "$rss"
	echo
	awk -v kb="$tar_rss" -v n="$tar_sigs" 'BEGIN { printf "**sign --tar, peak RSS** (1,000 members of 100 KiB, %d signatures out, /usr/bin/time -v, local): %.1f MiB.\n", n, kb / 1024 }'
	echo
	if [ -n "$ssh_note" ]; then
		echo "**ssh**: $ssh_note."
	else
		awk -F'\t' -v size="$ssh_label" '
			$1 == "ssh" { med[$2] = $4; runs = $3 }
			END {
				printf "**ssh, %s** (%d runs each, one throwaway sshd on 127.0.0.1 with the repo drop-in; client, sshd and signer on the same 2 cores): signing x %.2f of `ssh ... cat > /dev/null` (%.0f vs %.0f ms median).\n", size, runs, med["ssh-signstar"] / med["ssh-cat"], med["ssh-signstar"] * 1000, med["ssh-cat"] * 1000
			}' "$results"
		for k in ed25519 rsa3072; do
			awk -F'\t' -v l="sshpar-$k" -v k="$k" '
				$1 == l { med[$2] = $4; runs = $3 }
				END {
					if (runs) printf "\n**32 concurrent signers over ssh, %s, 1 KiB** (%d rounds each, interleaved): all 32 signed in %.2f s with the lock held from the tree root through signing to the append, %.2f s with it taken for the append only (the binary from before the notation): x %.2f.\n", k, runs, med["after"], med["before"], med["after"] / med["before"]
				}' "$results"
		done
		awk -F'\t' -v n="$tar_members" '
			$1 == "tarssh" { med[$2] = $4; runs = $3 }
			END {
				printf "\n**sign --tar over ssh, %d members of 100 KiB** (%d runs each, the same sshd): one `sign --tar` session x %.1f faster than %d `sign` sessions (%.2f vs %.2f s median); the same tar through `sign --tar` x %.2f of `ssh ... cat > /dev/null` (%.0f vs %.0f ms median).\n", n, runs, med["ssh-sign-each"] / med["ssh-sign-tar"], n, med["ssh-sign-tar"], med["ssh-sign-each"], med["ssh-sign-tar"] / med["ssh-cat-tar"], med["ssh-sign-tar"] * 1000, med["ssh-cat-tar"] * 1000
			}' "$results"
		awk -F'\t' -v n="$tar_members" '
			$1 == "client" { med[$2] = $4; runs = $3 }
			END {
				printf "\n**signstar-client over ssh** (%d runs each, the same sshd, pinned certificate, no witness): 1 file x %.2f of the bare `ssh ... sign < f > f.sig` (%.0f vs %.0f ms median); %d files of 100 KiB x %.2f of the raw `ssh ... sign --tar` session of the same files (%.0f vs %.0f ms median; target at most x 1.1).\n", runs, med["client-1"] / med["ssh-1"], med["client-1"] * 1000, med["ssh-1"] * 1000, n, med["client-n"] / med["ssh-tar-n"], med["client-n"] * 1000, med["ssh-tar-n"] * 1000
			}' "$results"
	fi
	echo
	echo "Raw figures (label, tool, runs, median s, min s, rusage max RSS KiB; the last is floored at the timer's own RSS, about 6 MiB, because Go starts children with vfork: see the /usr/bin/time table):"
	echo
	echo '```'
	cat "$results"
	echo '```'
	echo "<!-- bench:end -->"
} >"$report"

cat "$report"
if [ "${BENCH_WRITE:-1}" = 1 ]; then
	if [ -f BENCHMARKS.md ] && grep -q '<!-- bench:begin' BENCHMARKS.md; then
		awk -v rep="$report" '
			/<!-- bench:begin/ { while ((getline line < rep) > 0) print line; skip = 1; next }
			/<!-- bench:end -->/ { skip = 0; next }
			!skip { print }' BENCHMARKS.md >"$work/BENCHMARKS.md"
		cat "$work/BENCHMARKS.md" >BENCHMARKS.md
	else
		{ printf '# Benchmarks\n\n'; cat "$report"; } >>BENCHMARKS.md
	fi
	say "figures written to BENCHMARKS.md"
fi
