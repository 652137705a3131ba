#!/bin/bash
# run.sh --
#
#	Builds the libFuzzer targets of TclMilter and runs them:
#
#	    fuzz_wire	  the wire codec (generic/milterWire.c)
#	    fuzz_session  the session state machine (generic/milterSession.c)
#
#	Usage:	fuzz/run.sh SRCDIR BUILDDIR SECONDS
#		fuzz/run.sh BUILDDIR	(as "make fuzz" calls it; SRC_DIR and
#					 FUZZ_SECONDS come from the environment)
#
#	SRCDIR defaults to the directory above this script, BUILDDIR to the
#	current directory and SECONDS to $FUZZ_SECONDS or 60. The targets are
#	built with clang (-fsanitize=fuzzer,address,undefined) into
#	BUILDDIR/fuzz. Each target first replays the saved crashes of
#	SRCDIR/fuzz/regressions/ meant for it, then fuzzes for SECONDS/2:
#	three quarters of that with inputs up to 70000 bytes (a whole
#	65535-byte body chunk and more), a quarter with short inputs, where
#	libFuzzer mutates faster. The corpus starts from the seeds in
#	SRCDIR/fuzz/corpus/<target>/ (read only); what the fuzzer adds goes
#	to BUILDDIR/fuzz/work/<target>/corpus and is reused by the next run.
#	A crash is written to BUILDDIR/fuzz/work/<target>/crash-*.
#
#	Output: libFuzzer's logs in BUILDDIR/fuzz/work/<target>/*.log and one
#	summary line per target:
#
#	    fuzz_wire: 1234567 executions, cov 312, ft 1456, crashes 0
#
#	The exit status is 1 when a crash was found (or the build failed), 0
#	otherwise.
#
#	Environment: CLANG (the compiler, default: the first of clang,
#	clang-19 ... clang-14 found), FUZZ_FLAGS (extra libFuzzer options
#	for every run, e.g. "-seed=1").
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

set -u

here=$(cd "$(dirname "$0")" && pwd)
case $# in
    0)	srcdir=${SRC_DIR:-$(dirname "$here")}
	builddir=${BUILD_DIR:-$PWD}
	seconds=${FUZZ_SECONDS:-60} ;;
    1)	srcdir=${SRC_DIR:-$(dirname "$here")}
	builddir=$1
	seconds=${FUZZ_SECONDS:-60} ;;
    2)	srcdir=$1
	builddir=$2
	seconds=${FUZZ_SECONDS:-60} ;;
    3)	srcdir=$1
	builddir=$2
	seconds=$3 ;;
    *)	echo "usage: $0 SRCDIR BUILDDIR SECONDS" >&2
	exit 2 ;;
esac
case $seconds in
    ''|*[!0-9]*)
	echo "run.sh: SECONDS must be a whole number, not \"$seconds\"" >&2
	exit 2 ;;
esac
srcdir=$(cd "$srcdir" && pwd) || exit 2
mkdir -p "$builddir" || exit 2
builddir=$(cd "$builddir" && pwd) || exit 2

# ----------------------------------------------------------------------
# Build.
# ----------------------------------------------------------------------

clang=${CLANG:-}
if [ -z "$clang" ]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
	if command -v "$c" >/dev/null 2>&1; then
	    clang=$c
	    break
	fi
    done
fi
if [ -z "$clang" ]; then
    echo "run.sh: clang not found (apt-get install clang libclang-rt-dev," \
	"or set CLANG)" >&2
    exit 1
fi

out=$builddir/fuzz
mkdir -p "$out" || exit 1
cflags="-g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer -I$srcdir/generic"
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
common="$srcdir/generic/milterBuf.c $srcdir/generic/milterWire.c"

build() {
    local target=$1
    shift
    echo "run.sh: building $out/$target"
    # shellcheck disable=SC2086
    if ! "$clang" $san $cflags -o "$out/$target" "$@" \
	    "$srcdir/fuzz/$target.c"; then
	echo "run.sh: building $target failed" >&2
	exit 1
    fi
}
build fuzz_wire $common
build fuzz_session $common "$srcdir/generic/milterSession.c" \
    "$srcdir/generic/milterSessionActions.c" \
    "$srcdir/generic/milterSessionInfo.c" "$srcdir/generic/milterStats.c"

# ----------------------------------------------------------------------
# Run.
# ----------------------------------------------------------------------

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset LD_PRELOAD

status=0
half=$((seconds / 2))
[ "$half" -ge 1 ] || half=1

# The value of "name: N" in libFuzzer's last status line of a log.
laststat() {
    grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED).* $2: " "$1" \
	| tail -1 | sed -E "s/.* $2: ([0-9]+).*/\\1/"
}

for target in fuzz_wire fuzz_session; do
    short=${target#fuzz_}
    work=$out/work/$short
    corpus=$work/corpus
    seeds=$srcdir/fuzz/corpus/$short
    mkdir -p "$corpus" || exit 1
    crashes=0
    execs=0

    # Saved crashes first: they must all pass now.
    regressions=$(ls "$srcdir/fuzz/regressions/$short"-* 2>/dev/null)
    if [ -n "$regressions" ]; then
	# shellcheck disable=SC2086
	if ! "$out/$target" $regressions \
		>"$work/regressions.log" 2>&1; then
	    echo "run.sh: $target: a saved regression input fails again;" \
		"see $work/regressions.log" >&2
	    crashes=$((crashes + 1))
	fi
    fi

    long=$((half * 3 / 4))
    [ "$long" -ge 1 ] || long=1
    shortTime=$((half - long))
    [ "$shortTime" -ge 1 ] || shortTime=1
    case $short in
	wire)	smallLen=512 ;;
	*)	smallLen=4096 ;;
    esac
    cov=0
    ft=0
    for run in "long 70000 $long" "short $smallLen $shortTime"; do
	set -- $run
	log=$work/$1.log
	before=$(ls "$work" | grep -c -E '^(crash|leak|timeout|oom)-')
	echo "run.sh: $target: $3 s with -max_len=$2"
	# shellcheck disable=SC2086
	"$out/$target" -max_len="$2" -max_total_time="$3" -timeout=20 \
		-rss_limit_mb=2560 -print_final_stats=1 \
		-artifact_prefix="$work/" ${FUZZ_FLAGS:-} \
		"$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	after=$(ls "$work" | grep -c -E '^(crash|leak|timeout|oom)-')
	n=$(grep -E '^stat::number_of_executed_units:' "$log" \
		| tail -1 | awk '{print $2}')
	execs=$((execs + ${n:-0}))
	c=$(laststat "$log" cov)
	f=$(laststat "$log" ft)
	[ -n "$c" ] && [ "$c" -gt "$cov" ] && cov=$c
	[ -n "$f" ] && [ "$f" -gt "$ft" ] && ft=$f
	if [ "$after" -gt "$before" ] || [ "$rc" -ne 0 ]; then
	    crashes=$((crashes + (after > before ? after - before : 1)))
	    echo "run.sh: $target: crash; see $log and" \
		"$(ls -t "$work" | grep -E '^(crash|leak|timeout|oom)-' \
		| head -1)" >&2
	    grep -E 'invariant violated|ERROR:|SUMMARY:' "$log" | head -5 >&2
	fi
    done
    echo "$target: $execs executions, cov $cov, ft $ft, crashes $crashes"
    [ "$crashes" -eq 0 ] || status=1
done
exit $status
