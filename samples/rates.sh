#!/bin/bash
# rates.sh: measure the failure rate of the samples.
#
# usage: samples/rates.sh BUILD_DIR [N] [SAMPLE...] [--traced PATH_TO_AVISO_TRACE]
#                         [--timeout SECONDS] [--trace-args "ARGS"] [--no-points]
#
#   BUILD_DIR    meson build directory (the samples are BUILD_DIR/samples/NAME)
#   N            runs per sample (default 500)
#   SAMPLE...    sample names (default: every sample built)
#   --traced P   run each sample under aviso-trace P, as the bench's baseline series does:
#                `P [ARGS] --runs N --no-avoid --fail-on-exit --hang-timeout S --state-dir TMP
#                [--points samples/NAME.points] -- sample`, with a fresh model store in a
#                temporary directory (never loading constraints: the sample's own rate)
#   --timeout S  per-run timeout in seconds (default 5); a run still alive is killed with
#                SIGKILL (traced: aviso-trace's --hang-timeout) and counted as kind "hang"
#   --trace-args extra arguments for aviso-trace, before "--" (default: none)
#   --no-points  do not pass NAME.points to aviso-trace even where it exists
#
# Runs the samples one at a time, one run at a time (the machine is shared), prints progress
# to stderr and a table to stdout: sample, runs, failures, rate, and the outcome kinds seen
# (SIGSEGV, SIGABRT, exitN, hang) with their counts. Core dumps are disabled.
set -u

usage() {
    sed -n '3,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
build=""
runs=500
names=()
traced=""
tmo=5
trace_args=""
points=1

while [ $# -gt 0 ]; do
    case "$1" in
    --traced) [ $# -ge 2 ] || usage; traced=$2; shift 2 ;;
    --traced=*) traced=${1#--traced=}; shift ;;
    --timeout) [ $# -ge 2 ] || usage; tmo=$2; shift 2 ;;
    --timeout=*) tmo=${1#--timeout=}; shift ;;
    --trace-args) [ $# -ge 2 ] || usage; trace_args=$2; shift 2 ;;
    --trace-args=*) trace_args=${1#--trace-args=}; shift ;;
    --no-points) points=0; shift ;;
    -h|--help) usage ;;
    -*) echo "rates.sh: unknown option $1" >&2; usage ;;
    *)
        if [ -z "$build" ]; then
            build=$1
        elif [ -z "${n_set:-}" ] && [ ${#names[@]} -eq 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
            runs=$1; n_set=1
        else
            names+=("$1")
        fi
        shift ;;
    esac
done

[ -n "$build" ] || usage
[ -d "$build/samples" ] || { echo "rates.sh: no $build/samples (build first)" >&2; exit 2; }
if ! [[ "$runs" =~ ^[0-9]+$ ]] || [ "$runs" -eq 0 ]; then
    echo "rates.sh: bad N '$runs'" >&2
    exit 2
fi
if [ -n "$traced" ] && [ ! -x "$traced" ]; then
    echo "rates.sh: $traced is not executable" >&2
    exit 2
fi

if [ ${#names[@]} -eq 0 ]; then
    for src in "$here"/*.c "$here"/*.cpp; do
        n=$(basename "$src"); n=${n%.*}
        [ -x "$build/samples/$n" ] && names+=("$n")
    done
fi
[ ${#names[@]} -gt 0 ] || { echo "rates.sh: no samples found in $build/samples" >&2; exit 2; }

ulimit -c 0
tmp=""
if [ -n "$traced" ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/rates.XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT
fi
tmo_ms=$(awk -v t="$tmo" 'BEGIN { printf "%d", t * 1000 }')
# aviso-trace's --hang-timeout takes whole seconds: the timeout rounded up.
tmo_s=$(awk -v t="$tmo" 'BEGIN { s = int(t); if (s < t) s++; if (s < 1) s = 1; print s }')

now_ms() { date +%s%3N; }

# One run; prints the outcome kind: ok, hang, SIGxxx or exitN.
run_once() {
    local exe=$1 rc t0 t1
    t0=$(now_ms)
    # The subshell keeps bash's "Killed"/"Segmentation fault" notices off the terminal.
    ( timeout -s KILL "$tmo" "$exe" </dev/null >/dev/null 2>&1 ) 2>/dev/null
    rc=$?
    t1=$(now_ms)
    if [ "$rc" = 0 ]; then
        echo ok
    elif [ "$rc" = 137 ] && [ $((t1 - t0)) -ge "$tmo_ms" ]; then
        echo hang
    elif [ "$rc" -gt 128 ]; then
        echo "SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else
        echo "exit$rc"
    fi
}

# The outcome kind of a wait status from aviso-trace's --runs-log; its exit 124 is a hang.
status_kind() {
    local st=$1
    if [ "$st" = 0 ]; then
        echo ok
    elif [ $((st & 0x7f)) != 0 ]; then
        echo "SIG$(kill -l $((st & 0x7f)) 2>/dev/null || echo $((st & 0x7f)))"
    elif [ $(((st >> 8) & 0xff)) = 124 ]; then
        echo hang
    else
        echo "exit$(((st >> 8) & 0xff))"
    fi
}

# All runs of one sample under aviso-trace --runs; prints one outcome kind per run.
run_traced() {
    local exe=$1 name=$2 log="$tmp/$name.jsonl"
    local cmd=("$traced")
    # shellcheck disable=SC2206
    [ -n "$trace_args" ] && cmd+=($trace_args)
    cmd+=(--runs "$runs" --no-avoid --fail-on-exit --hang-timeout "$tmo_s"
          --state-dir "$tmp/$name.state" --runs-log "$log")
    if [ "$points" = 1 ] && [ -f "$here/$name.points" ]; then
        cmd+=(--points "$here/$name.points")
    fi
    "${cmd[@]}" -- "$exe" </dev/null >/dev/null 2>"$tmp/$name.stderr"
    local n
    n=$(grep -c '"status":' "$log" 2>/dev/null)
    if [ "${n:-0}" != "$runs" ]; then
        echo "rates.sh: $name: aviso-trace logged ${n:-0} of $runs runs" \
            "($(tail -n 1 "$tmp/$name.stderr"))" >&2
        return 1
    fi
    grep -o '"status":[0-9]*' "$log" | while IFS=: read -r _ st; do status_kind "$st"; done
}

mode="untraced"
[ -n "$traced" ] && mode="traced ($traced${trace_args:+ $trace_args})"
echo "# rates.sh: $mode, $runs runs per sample, timeout ${tmo}s, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) CPUs" 
printf '%-16s %6s %8s %7s  %s\n' sample runs failures rate outcomes

# Counts one run's outcome kind $1 into fails and kinds.
count() {
    if [ "$1" != ok ]; then
        fails=$((fails + 1))
        kinds[$1]=$(( ${kinds[$1]:-0} + 1 ))
    fi
}

# The progress line, after $1 runs.
progress() {
    printf '\r%s: %d/%d runs, %d failures, %ds   ' "$name" "$1" "$runs" "$fails" \
        $(( ($(now_ms) - start) / 1000 )) >&2
}

for name in "${names[@]}"; do
    exe="$build/samples/$name"
    if [ ! -x "$exe" ]; then
        echo "rates.sh: no executable $exe, skipped" >&2
        continue
    fi
    declare -A kinds=()
    fails=0
    start=$(now_ms)
    if [ -n "$traced" ]; then
        printf '%s: %d runs under aviso-trace...' "$name" "$runs" >&2
        if ! outcomes=$(run_traced "$exe" "$name"); then
            echo >&2
            unset kinds
            continue
        fi
        for k in $outcomes; do
            count "$k"
        done
        progress "$runs"
    else
        for ((i = 1; i <= runs; i++)); do
            count "$(run_once "$exe")"
            if [ $((i % 50)) = 0 ] || [ "$i" = "$runs" ]; then
                progress "$i"
            fi
        done
    fi
    echo >&2
    outs=""
    for k in $(printf '%s\n' "${!kinds[@]}" | sort); do
        outs+="$k:${kinds[$k]} "
    done
    [ -n "$outs" ] || outs="-"
    printf '%-16s %6d %8d %6.1f%%  %s\n' "$name" "$runs" "$fails" \
        "$(awk -v f="$fails" -v r="$runs" 'BEGIN { print 100 * f / r }')" "$outs"
    unset kinds
done
