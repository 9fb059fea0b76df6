#!/usr/bin/env bash
# bench/avoid/overhead.sh: the cost of avoidance itself, when the bug does not fire (issue 5;
# see README.md in this folder).
#
#   bench/avoid/overhead.sh [-r REPS] [-n PAIRS] [-t THREADS] [-p same|none] [-B BUILD_DIR]
#
# The program is bench/trace/lockloop PAIRS THREADS: every one of its events is a
# pthread_mutex_lock or pthread_mutex_unlock of the worker, at two sites. Side by side,
# repetition after repetition (interleaved, so drift in the machine's load hits all columns
# alike), wall time of:
#   untraced     lockloop PAIRS THREADS
#   no-model     aviso-trace --no-model -- lockloop            (a pure trace: the floor here)
#   no-ring      aviso-trace --no-model --no-ring -- lockloop  (a stop at every event: what a
#                decision costs at least, since every event at a constraint's site stops)
#   constraints  aviso-trace --constraints FILE -- lockloop    (two constraints over the
#                worker's own sites, unlock -> lock and lock -> unlock: every event activates
#                one and is checked against the other)
#   model        aviso-trace --runs 1 --no-avoid --state-dir DIR -- lockloop  (the embedded
#                model, nothing loaded: the store opened, the run planned and reported, the
#                final RPB sent as the correct-run sample)
# With THREADS = 1 (the default) a constraint never delays anything (only another thread than
# B's is delayed at A): the figures are the bookkeeping alone. With THREADS > 1 the worker
# threads do delay each other, and the constraints column measures the delays as well.
# Prints medians over REPS (default 11) with every raw value, the cost per event of each column
# over no-model, and the ratios. No randomness is involved (no seed).
set -uo pipefail

reps=11 pairs=20000 threads=1 place=same build=""
usage() {
	echo "usage: $0 [-r REPS] [-n PAIRS] [-t THREADS] [-p same|none] [-B BUILD_DIR]" >&2
	exit 2
}
while getopts "r:n:t:p:B:h" opt; do
	case $opt in
	r) reps=$OPTARG ;;
	n) pairs=$OPTARG ;;
	t) threads=$OPTARG ;;
	p) case $OPTARG in same | none) place=$OPTARG ;; *) usage ;; esac ;;
	B) build=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 0 ] || usage
[[ $reps =~ ^[1-9][0-9]*$ && $pairs =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ ]] || usage

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${build:-build}
[ -d "$build" ] || build=$root/$build
if [ ! -d "$build" ]; then
	echo "overhead.sh: no build directory $build (meson setup build && ninja -C build)" >&2
	exit 1
fi
build=$(cd "$build" && pwd)
aviso=$build/tracer/aviso-trace
loop=$build/bench/trace/lockloop
runstat=$build/bench/trace/runstat
if [ -f "$build/build.ninja" ]; then
	nice ninja -C "$build" -j2 tracer/aviso-trace bench/trace/lockloop bench/trace/runstat \
		>/dev/null 2>&1 || echo "overhead.sh: could not rebuild; using what is built" >&2
fi
for p in "$aviso" "$loop" "$runstat"; do
	[ -x "$p" ] || { echo "overhead.sh: $p missing: ninja -C $build" >&2; exit 1; }
done

tmp=$(mktemp -d -t aviso-overhead.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cpu=$(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')
pin=()
[ "$place" = same ] && pin=(taskset -c "$cpu")
limit=(timeout --signal=KILL 300)

# The worker's two sites, as aviso-trace -o writes them (a short traced run).
"$aviso" --no-model -o "$tmp/events.jsonl" -- "$loop" 3 1 >/dev/null 2>"$tmp/err" || {
	cat "$tmp/err" >&2
	exit 1
}
site() { # site KIND: the worker's (thread 2) site of that kind
	python3 -c 'import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["thread"] == 2 and e["kind"] == sys.argv[2]:
        print(e["site"]); break' "$tmp/events.jsonl" "$2"
}
lock=$(site x mutex_lock) unlock=$(site x mutex_unlock)
[ -n "$lock" ] && [ -n "$unlock" ] || { echo "overhead.sh: no worker sites found" >&2; exit 1; }
printf '# after the worker unlocks, delay another thread'"'"'s lock; and the converse\n%s %s\n%s %s\n' \
	"$unlock" "$lock" "$lock" "$unlock" >"$tmp/constraints"

# Columns: name and command.
names=(untraced no-model no-ring constraints model)
cmds=(
	"$loop $pairs $threads"
	"$aviso --no-model -- $loop $pairs $threads"
	"$aviso --no-model --no-ring -- $loop $pairs $threads"
	"$aviso --constraints $tmp/constraints -- $loop $pairs $threads"
	"$aviso --runs 1 --no-avoid --state-dir $tmp/state --report-dir $tmp/reports -- $loop $pairs $threads"
)
events=$((2 * pairs * threads + 2 * threads))

echo "# avoidance overhead when the bug does not fire (issue 5): bench/avoid/overhead.sh"
echo "# date $(date '+%Y-%m-%d %H:%M:%S %z'); $(uname -n) $(uname -sr); nproc $(nproc);" \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); build $build;" \
	"$reps repetitions; lockloop $pairs pairs x $threads threads = $events events;" \
	"placement $place${pin[*]:+ (${pin[*]})}; no randomness (no seed)"
echo "# constraints file ($tmp/constraints):"
sed 's/^/#   /' "$tmp/constraints"
for i in "${!names[@]}"; do
	echo "# ${names[$i]}: ${pin[*]:+${pin[*]} }${cmds[$i]}"
done
# One unmeasured run of the model column: the store is created then, not in a measured run.
"${pin[@]}" ${cmds[4]} >/dev/null 2>&1

declare -A raw=()
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
for ((r = 1; r <= reps; r++)); do
	for i in "${!names[@]}"; do
		line=$("${limit[@]}" "${pin[@]}" "$runstat" ${cmds[$i]} 2>"$tmp/err")
		if [ "$(field status "$line")" != 0 ]; then
			echo "overhead.sh: ${names[$i]} failed ($line):" >&2
			tail -n 5 "$tmp/err" >&2
			exit 1
		fi
		raw[${names[$i]}]+="$(field wall_ns "$line") "
	done
done

median() { # median of the arguments; FMT (default %.0f) for the mean of the middle two
	printf '%s\n' "$@" | sort -g | awk -v f="${FMT:-%.0f}" '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else printf f "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
printf '%-12s %10s %14s %16s %10s\n' column wall_ms ns/event "vs no-model" ratio
nm=$(median ${raw[no-model]})
for n in "${names[@]}"; do
	m=$(median ${raw[$n]})
	# Ratio to no-model, per repetition (the columns of one repetition ran back to back).
	read -ra a <<<"${raw[$n]}"
	read -ra b <<<"${raw[no-model]}"
	rs=
	for ((i = 0; i < ${#a[@]}; i++)); do
		rs+="$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.3f", x / y }') "
	done
	printf '%-12s %10s %14s %16s %10s\n' "$n" \
		"$(awk -v v="$m" 'BEGIN { printf "%.1f", v / 1e6 }')" \
		"$(awk -v v="$m" -v e="$events" 'BEGIN { printf "%.0f", v / e }')" \
		"$(awk -v v="$m" -v w="$nm" -v e="$events" 'BEGIN { printf "%+.0f ns/event", (v - w) / e }')" \
		"$(FMT=%.3f median $rs)"
	echo "  raw wall_ns: ${raw[$n]}"
	echo "  raw ratio to no-model: $rs"
done
echo "# ratio: median of the per-repetition ratios wall / no-model wall"
