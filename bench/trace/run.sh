#!/usr/bin/env bash
# bench/trace/run.sh: issue 2's performance benchmark (see README.md in this folder).
#
#   bench/trace/run.sh [-r REPS] [-n PAIRS] [-k HITS] [-p same|none|all] [-a ARGS]... [BUILD_DIR]
#
# In one run, side by side, for 1 and 2 threads, repetition after repetition (interleaved, so
# drift in the machine's load hits all columns alike):
#   floor      the bare ptrace floor: int3 over a nop, PTRACE_CONT (floor -m cont)
#   untraced   lockloop PAIRS THREADS                              (wall time)
#   traced     aviso-trace -o /dev/null -- lockloop PAIRS THREADS  (wall time, peak memory)
# cost per event = (traced wall - untraced wall) / events, events = 2*PAIRS*THREADS lock/unlock
# calls + THREADS creates + THREADS joins; ratio = cost per event / floor (target: <= 1.5), per
# repetition (each with its own floor) and of the medians.
# Then the start-up delay: exec to the first line of main of startup (libc + libstdc++), traced
# by `aviso-trace -- startup` minus untraced. Medians over REPS, and every raw value.
#
# Placement (-p, default all = same, then none): `same` pins everything (floor's tracer and
# child; aviso-trace and its program) to one CPU with taskset: stable figures, the ones to
# compare; `none` leaves placement to the scheduler for all columns alike: what a user gets, but
# bimodal on a 2-vCPU VM (a stop that wakes the tracer on the other CPU costs ~10 times more).
# -a ARGS (repeatable): aviso-trace options; each -a is a variant measured side by side with
# the others in every repetition (e.g. -a "--no-ring --frames 1" -a "--frames 1": the stop path
# and the event ring). Without -a, one variant: the default options.
# No randomness is involved (no seed). Until aviso-trace is built, its rows are skipped.
set -uo pipefail

reps=7 pairs=10000 hits=3000 places="same none" variants=()
usage() {
	echo "usage: $0 [-r REPS] [-n PAIRS] [-k HITS] [-p same|none|all] [-a AVISO_ARGS]... [BUILD_DIR]" >&2
	exit 2
}
while getopts "r:n:k:p:a:h" opt; do
	case $opt in
	r) reps=$OPTARG ;;
	n) pairs=$OPTARG ;;
	k) hits=$OPTARG ;;
	p) case $OPTARG in same | none) places=$OPTARG ;; all) ;; *) usage ;; esac ;;
	a) variants+=("$OPTARG") ;; # aviso-trace options of one variant, e.g. "--frames 1"
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
[ ${#variants[@]} -gt 0 ] || variants=("")
nv=${#variants[@]}
[[ $reps =~ ^[1-9][0-9]*$ && $pairs =~ ^[1-9][0-9]*$ && $hits =~ ^[1-9][0-9]*$ ]] || usage

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
[ -d "$build" ] || build=$root/$build
if [ ! -d "$build" ]; then
	echo "run.sh: no build directory ${1:-build} (meson setup BUILD_DIR && ninja -C BUILD_DIR)" >&2
	exit 1
fi
build=$(cd "$build" && pwd)
bt=$build/bench/trace

log=$(mktemp -t aviso-bench.XXXXXX)
trap 'rm -f "$log"' EXIT

# Bring the benchmark's own programs up to date (never a full build: other components may be
# mid-change); aviso-trace only if ninja knows it, and a failure there only skips its rows.
if [ -f "$build/build.ninja" ]; then
	if ! ninja -C "$build" -j2 bench/trace/floor bench/trace/lockloop bench/trace/startup \
		bench/trace/runstat >"$log" 2>&1; then
		tail -n 3 "$log" >&2
		echo "run.sh: could not rebuild bench/trace in $build; using what is built" >&2
	fi
	if ninja -C "$build" -t targets all 2>/dev/null | grep -q '^tracer/aviso-trace:'; then
		ninja -C "$build" -j2 tracer/aviso-trace >"$log" 2>&1 ||
			echo "run.sh: building tracer/aviso-trace failed; using what is there" >&2
	fi
fi
for p in floor lockloop startup runstat; do
	if [ ! -x "$bt/$p" ]; then
		echo "run.sh: $bt/$p missing: ninja -C $build" >&2
		exit 1
	fi
done
aviso=$build/tracer/aviso-trace
[ -x "$aviso" ] || aviso=$(find "$build" -maxdepth 3 -name aviso-trace -type f -perm -u+x \
	2>/dev/null | head -n 1)
[ -n "$aviso" ] && [ -x "$aviso" ] || aviso=

# The CPU `same` pins to: the first one this script may run on (floor -p same picks the same).
cpu=$(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')
pin=()
# A hung tracer must not hang the benchmark: runstat's child dies with it (PDEATHSIG), and the
# program with its tracer (EXITKILL).
limit=(timeout --foreground --signal=KILL 300)

median() { # median of the arguments (numbers)
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
field() { # field NAME LINE: the value of NAME=value in a runstat line
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}
# measure CMD...: run it under runstat (pinned per $pin), print runstat's line; on failure print
# the command's stderr tail and return 1.
measure() {
	local line status
	line=$("${limit[@]}" "${pin[@]}" "$bt/runstat" "$@" 2>"$log") || true
	status=$(field status "$line")
	if [ "$status" != 0 ]; then
		echo "run.sh: '$*' failed (status ${status:-none}):" >&2
		tail -n 5 "$log" >&2
		return 1
	fi
	echo "$line"
}
ms() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.1f", v / 1e6 }'; }

echo "# aviso-trace benchmark (issue 2): bench/trace/run.sh"
echo "# date $(date '+%Y-%m-%d %H:%M:%S %z'); $(uname -n) $(uname -sr); nproc $(nproc);" \
	"cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1);" \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?');" \
	"build $build; $reps repetitions; floor $hits hits per thread;" \
	"lockloop $pairs lock/unlock pairs per thread; no randomness (no seed)"
if [ -z "$aviso" ]; then
	echo "# aviso-trace: not built (no tracer/aviso-trace in $build): its rows are SKIPPED;" \
		"only the floor and the untraced runs are measured"
else
	for ((v = 0; v < nv; v++)); do
		echo "# aviso-trace variant $v: $aviso ${variants[$v]:-(default options)}"
	done
fi

failed=0 # set by the first failure of aviso-trace; its later runs are skipped
for place in $places; do
	declare -A fl=() un=() tr=() mem=() umem=() sum=()
	pin=()
	[ "$place" = same ] && pin=(taskset -c "$cpu")
	for ((r = 1; r <= reps; r++)); do
		for t in 1 2; do
			line=$("${limit[@]}" "$bt/floor" -q -m cont -t "$t" -p "$place" -r 1 -k "$hits") ||
				{ echo "run.sh: floor failed" >&2; exit 1; }
			fl[$t]+="$(awk '{ print $5 }' <<<"$line") "
			line=$(measure "$bt/lockloop" "$pairs" "$t") || exit 1
			un[$t]+="$(field wall_ns "$line") "
			umem[$t]+="$(field maxrss_kb "$line") "
			sum[$t]=$(field out "$line")
			for ((v = 0; v < nv; v++)); do
				[ -n "$aviso" ] && [ $failed = 0 ] || continue
				# shellcheck disable=SC2086 # the variant's options are words
				if line=$(measure "$aviso" ${variants[$v]} -o /dev/null -- "$bt/lockloop" \
					"$pairs" "$t"); then
					tr[$v:$t]+="$(field wall_ns "$line") "
					mem[$v:$t]+="$(field maxrss_kb "$line") "
					if [ "$(field out "$line")" != "${sum[$t]}" ]; then
						echo "run.sh: traced checksum $(field out "$line") !=" \
							"untraced ${sum[$t]}" >&2
						failed=1
					fi
				else
					failed=1
				fi
			done
		done
	done

	echo
	echo "## placement $place${pin[*]:+ (${pin[*]})}: cost per event (ns), lock/unlock loop;" \
		"medians of $reps, raw values below"
	printf '%-8s %-28s %12s %14s %8s %13s %13s %11s %13s\n' threads variant floor_ns/hit \
		aviso_ns/event ratio untraced_ms traced_ms untr_rss_kb traced_rss_kb
	for t in 1 2; do
	for ((v = 0; v < nv; v++)); do
		events=$((2 * pairs * t + 2 * t))
		f=$(median ${fl[$t]})
		costs= ratios=
		read -ra fa <<<"${fl[$t]}"
		read -ra ua <<<"${un[$t]}"
		read -ra ta <<<"${tr[$v:$t]:-}"
		for ((i = 0; i < ${#ta[@]}; i++)); do
			c=$(awk -v a="${ta[$i]}" -v b="${ua[$i]}" -v e="$events" \
				'BEGIN { printf "%.0f", (a - b) / e }')
			costs+="$c "
			ratios+="$(awk -v c="$c" -v f="${fa[$i]}" 'BEGIN { printf "%.2f", c / f }') "
		done
		if [ $failed = 1 ]; then
			c=FAILED ratio=- tm=FAILED m=FAILED costs= ratios=
			tr[$v:$t]= mem[$v:$t]=
		elif [ -n "$costs" ]; then
			c=$(median $costs)
			ratio=$(awk -v c="$c" -v f="$f" 'BEGIN { printf "%.2f", c / f }')
			tm=$(ms "$(median ${tr[$v:$t]})")
			m=$(median ${mem[$v:$t]})
		else
			c=skipped ratio=- tm=skipped m=skipped
		fi
		printf '%-8s %-28s %12s %14s %8s %13s %13s %11s %13s\n' "$t" "'${variants[$v]}'" "$f" \
			"$c" "$ratio" "$(ms "$(median ${un[$t]})")" "$tm" "$(median ${umem[$t]})" "$m"
		echo "  raw floor_ns/hit:   ${fl[$t]}"
		echo "  raw untraced_ns:    ${un[$t]}"
		echo "  raw traced_ns:      ${tr[$v:$t]:--}"
		echo "  raw aviso_ns/event: ${costs:--}  ($events events per run)"
		echo "  raw ratio:          ${ratios:--}"
		echo "  raw traced_rss_kb:  ${mem[$v:$t]:--}  (max of tracer and tracee;" \
			"untraced: ${umem[$t]})"
	done
	done
done

# Start-up delay, left to the scheduler (placement does not matter much for one exec).
pin=()
echo
echo "## start-up delay (ns): exec to main's first line of startup (libc + libstdc++);" \
	"medians of $reps"
su= st=
for ((r = 1; r <= reps; r++)); do
	line=$(measure "$bt/startup") || exit 1
	su+="$(field startup_ns "$line") "
	[ -n "$aviso" ] && [ $failed = 0 ] || continue
	# shellcheck disable=SC2086 # the last variant's options
	if line=$(measure "$aviso" ${variants[$((nv - 1))]} -- "$bt/startup"); then
		v=$(field startup_ns "$line")
		if [ "$v" = - ]; then
			echo "run.sh: traced startup printed no startup-ns line" >&2
			failed=1
		else
			st+="$v "
		fi
	else
		failed=1
	fi
done
us=$(median $su)
if [ $failed = 1 ]; then
	ts=FAILED delay=FAILED st=
elif [ -n "$st" ]; then
	ts=$(median $st)
	delay=$(awk -v a="$ts" -v b="$us" 'BEGIN { printf "%.2f ms", (a - b) / 1e6 }')
else
	ts=skipped delay=skipped
fi
echo "untraced $us   traced $ts   start-up delay (traced - untraced) $delay" \
	"(variant $((nv - 1)): ${variants[$((nv - 1))]:-default options})"
echo "  raw untraced_ns: $su"
echo "  raw traced_ns:   ${st:--}"
[ -n "$aviso" ] || echo "# aviso-trace rows skipped: not built yet"
[ $failed = 0 ] || echo "# aviso-trace FAILED (messages above): its figures are not reported"
exit $failed
