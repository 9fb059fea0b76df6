#!/usr/bin/env bash
# bench/avoid/run.sh: issue 5's measurement of failure avoidance (see README.md in this folder).
#
#   bench/avoid/run.sh [-n RUNS] [-s SEED] [-o OUTDIR] [-B BUILD_DIR] [-j] [-x "ARGS"] [SAMPLE...]
#
# For each sample, two series of RUNS runs (default 1000) of `aviso-trace --runs RUNS`, each
# with a fresh state directory (an empty model) and the same seed:
#   avoid  the model chooses constraints for each run (AVISO.md sections 4-6)
#   base   --no-avoid: outcomes are reported to the model, constraints never loaded
# Kept in OUTDIR, per sample and series (S = avoid or base):
#   SAMPLE.S.jsonl    the --runs-log: one JSON line per run (what it loaded, how it ended)
#   SAMPLE.S.stderr   aviso-trace's stderr (one report per failure, the summary at the end)
#   SAMPLE.S.stdout   the program's output (some samples print a checksum), apart
#   SAMPLE.S.reports/ the failure reports (--report-dir)
#   SAMPLE.S.state/   the model's store (aviso-server --db OUTDIR/SAMPLE.S.state/model)
#   run.txt           what this script printed: seed, commit, every command
# then bench/avoid/analyze.py OUTDIR prints the table and writes the SVGs into OUTDIR.
#
# SAMPLE defaults to every sample whose bug is an atomicity or an order violation (the bugs Aviso
# avoids; samples/README.md), slowest last; deadlock_abba is left out (a deadlock is neither).
# -x adds ARGS to every aviso-trace command (e.g. -x "--delay-us 5000").
# -j runs a sample's two series at the same time (half the wall time; on 2 CPUs they compete
# with each other, alike for both); by default they run one after the other, niced.
# SEED defaults to a random one, printed: `-s SEED` repeats the choices of a series (the
# schedules themselves are the machine's, so outcomes differ from one repetition to the next).
set -uo pipefail

# Bug class per sample (samples/README.md's "bug pattern"): the ones Aviso can avoid.
atomicity="atom_ptr points_flag cxx_map cxx_workq double_free refcount rwlock_dup lost_update
	aba_stack"
order="order_init order_exit cxx_dcl lost_wakeup"
default_samples="atom_ptr order_init order_exit points_flag cxx_map cxx_workq double_free refcount
	rwlock_dup lost_update aba_stack cxx_dcl lost_wakeup"

runs=1000 seed="" outdir="" build="" parallel=0 xargs=""
usage() {
	echo "usage: $0 [-n RUNS] [-s SEED] [-o OUTDIR] [-B BUILD_DIR] [-j] [-x ARGS] [SAMPLE...]" >&2
	exit 2
}
while getopts "n:s:o:B:jx:h" opt; do
	case $opt in
	n) runs=$OPTARG ;;
	s) seed=$OPTARG ;;
	o) outdir=$OPTARG ;;
	B) build=$OPTARG ;;
	j) parallel=1 ;;
	x) xargs=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[[ $runs =~ ^[1-9][0-9]*$ ]] || usage
[ -z "$seed" ] || [[ $seed =~ ^[0-9]+$ ]] || usage
# A seed from the kernel's generator, printed; 15 digits keep it well inside 64 bits.
[ -n "$seed" ] || seed=$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${build:-build}
[ -d "$build" ] || build=$root/$build
if [ ! -d "$build" ]; then
	echo "run.sh: no build directory ${build} (meson setup build && ninja -C build)" >&2
	exit 1
fi
build=$(cd "$build" && pwd)
aviso=$build/tracer/aviso-trace

samples=("$@")
[ ${#samples[@]} -gt 0 ] || read -ra samples <<<"$(echo $default_samples)"
for s in "${samples[@]}"; do
	case " $(echo $atomicity $order) " in
	*" $s "*) ;;
	*) echo "run.sh: $s: not an atomicity or order-violation sample" \
		"(these are: $(echo $default_samples))" >&2
	   exit 2 ;;
	esac
done

# Bring aviso-trace and the samples up to date (never a full build: other components may be
# mid-change); a failure only means measuring what is built.
if [ -f "$build/build.ninja" ]; then
	targets=(tracer/aviso-trace)
	for s in "${samples[@]}"; do targets+=("samples/$s"); done
	nice ninja -C "$build" -j2 "${targets[@]}" >/dev/null 2>&1 ||
		echo "run.sh: could not rebuild ${targets[*]} in $build; using what is built" >&2
fi
for p in "$aviso" "${samples[@]/#/$build/samples/}"; do
	if [ ! -x "$p" ]; then
		echo "run.sh: $p missing: ninja -C $build" >&2
		exit 1
	fi
done

outdir=${outdir:-avoid-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$outdir" || exit 1
outdir=$(cd "$outdir" && pwd)
exec > >(tee -a "$outdir/run.txt")

# A stuck series must not hang the benchmark: 30 s a run at most, on average (a failing run of
# a hang sample costs --hang-timeout, 1 s; a normal run 40-100 ms).
limit=(timeout --signal=KILL $((runs * 30 + 60)))

echo "# aviso-trace avoidance benchmark (issue 5): bench/avoid/run.sh"
echo "# date $(date '+%Y-%m-%d %H:%M:%S %z'); $(uname -n) $(uname -sr); nproc $(nproc);" \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(
	git -C "$root" diff --quiet HEAD -- tracer fsm model breakpoints samples 2>/dev/null ||
	echo ' (with uncommitted changes)'); build $build"
echo "# seed $seed; $runs runs per series; samples: ${samples[*]}; outdir $outdir"
echo "# a sample's two series $([ $parallel = 1 ] && echo 'side by side (-j)' || echo 'one after the other')"

# series SAMPLE KIND: one series (KIND avoid or base) in the background-able form; prints its
# command first.
series() {
	local s=$1 kind=$2 extra=()
	local pre=$outdir/$s.$kind
	rm -rf "$pre.state" "$pre.reports" "$pre.jsonl"
	mkdir -p "$pre.reports"
	[ "$kind" = base ] && extra+=(--no-avoid)
	# shellcheck disable=SC2206 # -x ARGS: split on spaces on purpose
	[ -n "$xargs" ] && extra+=($xargs)
	[ -f "$root/samples/$s.points" ] && extra+=(--points "$root/samples/$s.points")
	# --hang-timeout: lost_wakeup's failure is a hang; --fail-on-exit: rwlock_dup's is exit 2.
	local cmd=(nice "$aviso" --runs "$runs" --seed "$seed" --state-dir "$pre.state"
		--runs-log "$pre.jsonl" --report-dir "$pre.reports" --hang-timeout 1 --fail-on-exit
		"${extra[@]}" -- "$build/samples/$s")
	echo "\$ ${cmd[*]} >$pre.stdout 2>$pre.stderr"
	"${limit[@]}" "${cmd[@]}" >"$pre.stdout" 2>"$pre.stderr" </dev/null
	local r=$?
	[ $r = 0 ] || echo "run.sh: $s $kind series ended with status $r (see $pre.stderr)" >&2
	return $r
}

status=0
for s in "${samples[@]}"; do
	t0=$(date +%s)
	echo
	echo "## $s ($(case " $(echo $atomicity) " in *" $s "*) echo atomicity ;; *) echo order ;; esac) violation)"
	if [ $parallel = 1 ]; then
		series "$s" avoid & a=$!
		series "$s" base & b=$!
		wait $a || status=1
		wait $b || status=1
	else
		series "$s" avoid || status=1
		series "$s" base || status=1
	fi
	for kind in avoid base; do
		echo "  $kind: $(grep -A3 '^aviso-trace: [0-9]* runs' "$outdir/$s.$kind.stderr" |
			tr -s ' \n' ' ')"
	done
	echo "  wall $(($(date +%s) - t0)) s"
done

echo
echo "\$ $root/bench/avoid/analyze.py $outdir"
python3 "$root/bench/avoid/analyze.py" "$outdir" || status=1
exit $status
