#!/bin/bash
#
# run.sh --
#
#	The TclMilter benchmark (`make bench`): TclMilter running
#	bench/blacklist-bench.tcl beside a libmilter C milter doing the same
#	work (bench/cmilter.c), driven by the same MTA-side load generator
#	(bench/loadgen.c) in the same run.
#
#	Usage: bench/run.sh BUILD_DIR
#
#	BUILD_DIR holds the built extension (found through TCLLIBPATH);
#	loadgen and cmilter are compiled into BUILD_DIR/bench, and the raw
#	results and milter logs go there too.
#
#	Knobs (environment):
#	  BENCH_DURATION=5	measured seconds per run
#	  BENCH_WARMUP=1	warmup seconds per run
#	  BENCH_RUNS=3		runs per milter and cell (median reported)
#	  BENCH_SOCKETS="unix inet"
#	  BENCH_CONC="1 8 64"	concurrent milter connections
#	  BENCH_PER_SESSION=1	messages per milter connection (SMTP session)
#	  BENCH_QA_CONC=8	concurrencies also run over TCP with
#				TCP_QUICKACK in the load generator ("" = none)
#	  BENCH_IDLE=1000	idle connections for the memory test (0 = skip)
#	  BENCH_TCLSH=tclsh8.6	(or TCLSH, as set by make bench)
#	  BENCH_STANDIN=1	run cmilter in the TclMilter column (to check
#				the harness before TclMilter builds)
#
#	Exit status: 0 if every run completed with no error.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=$BUILD/bench
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
RUNS=${BENCH_RUNS:-3}
SOCKETS=${BENCH_SOCKETS:-unix inet}
CONCS=${BENCH_CONC:-1 8 64}
PER_SESSION=${BENCH_PER_SESSION:-1}
QA_CONCS=${BENCH_QA_CONC-8}
IDLE=${BENCH_IDLE:-1000}
TCLSH=${BENCH_TCLSH:-${TCLSH:-tclsh8.6}}
STANDIN=${BENCH_STANDIN:-0}
CC=${CC:-gcc}

mkdir -p "$OUT" || exit 2
RUNDIR=$(mktemp -d /tmp/tclmilter-bench.XXXXXX) || exit 2
RESULTS=$OUT/results.txt
: > "$RESULTS"
FAILED=0
MPID=""

cleanup() {
    if [ -n "$MPID" ]; then
	kill -KILL "$MPID" 2>/dev/null
	wait "$MPID" 2>/dev/null
    fi
    rm -rf "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------
# Build the C parts.

echo "building loadgen and cmilter in $OUT"
$CC -O2 -Wall -o "$OUT/loadgen" "$SRC/loadgen.c" -lpthread || exit 2
$CC -O2 -Wall -o "$OUT/cmilter" "$SRC/cmilter.c" -lmilter -lpthread || exit 2

# 1000 idle sessions plus the listener and friends, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 200)) ]
then
    echo "warning: open file limit $(ulimit -n) is low for $IDLE" \
	"idle connections" >&2
fi

# ---------------------------------------------------------------------
# Which TclMilter?

if [ "$STANDIN" = 1 ]; then
    TCLMILTER_VERSION="(stand-in: cmilter)"
    TNAME="cmilter*"
else
    TCLMILTER_VERSION=$(echo 'puts [package require TclMilter]' \
	| TCLLIBPATH=$BUILD "$TCLSH" 2>&1)
    if [ $? -ne 0 ] || ! [[ "$TCLMILTER_VERSION" =~ ^[0-9.]+$ ]]; then
	echo "error: TCLLIBPATH=$BUILD $TCLSH cannot load TclMilter:" >&2
	echo "$TCLMILTER_VERSION" >&2
	echo "(BENCH_STANDIN=1 runs cmilter in its place)" >&2
	exit 2
    fi
    TNAME="TclMilter"
fi
CNAME="libmilter"

# ---------------------------------------------------------------------
# Milter processes.

PORT=$((40000 + RANDOM % 10000))
SEQ=0

# new_spec SOCKET: pick a fresh connection spec in SPEC.
new_spec() {
    SEQ=$((SEQ + 1))
    case $1 in
	unix)
	    SPEC=unix:$RUNDIR/m$SEQ.sock
	    ;;
	inet*)
	    PORT=$((PORT + 1))
	    while ss -Htan "sport = :$PORT" 2>/dev/null | grep -q .; do
		PORT=$((PORT + 1))
	    done
	    SPEC=inet:$PORT@127.0.0.1
	    ;;
    esac
}

# start_milter KIND SPEC: start the milter, set MPID, wait until it listens.
start_milter() {
    local kind=$1 spec=$2 log=$OUT/milter-$1.log i
    if [ "$kind" = c ] || [ "$STANDIN" = 1 ]; then
	"$OUT/cmilter" "$spec" >>"$log" 2>&1 &
    else
	TCLLIBPATH=$BUILD "$TCLSH" "$SRC/blacklist-bench.tcl" "$spec" \
	    >>"$log" 2>&1 &
    fi
    MPID=$!
    for i in $(seq 200); do
	if ! kill -0 "$MPID" 2>/dev/null; then
	    echo "error: $kind milter exited at start-up (see $log)" >&2
	    MPID=""
	    return 1
	fi
	case $spec in
	    # libmilter binds the socket file and listens later, so for it
	    # ask ss for a listener on that path. TclMilter binds under a
	    # private name (which is what ss shows) and links the file into
	    # place once it listens, so there the file is the signal.
	    unix:*)
		if [ "$kind" = c ] || [ "$STANDIN" = 1 ]; then
		    ss -Hlx src "${spec#unix:}" 2>/dev/null \
			| grep -q LISTEN && return 0
		elif [ -S "${spec#unix:}" ]; then
		    return 0
		fi
		;;
	    inet:*)
		local port=${spec#inet:}
		port=${port%@*}
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
		;;
	esac
	sleep 0.05
    done
    echo "error: $kind milter does not listen on $spec (see $log)" >&2
    stop_milter
    return 1
}

stop_milter() {
    if [ -n "$MPID" ]; then
	kill -TERM "$MPID" 2>/dev/null
	sleep 0.1
	kill -KILL "$MPID" 2>/dev/null
	wait "$MPID" 2>/dev/null
	MPID=""
    fi
}

# kv LINE KEY: the value of KEY=... in a loadgen output line.
kv() {
    local v
    v=$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")
    echo "${v:-NA}"
}

# one_run SOCKET CONC KIND RUN: one load run; appends to $RESULTS.
one_run() {
    local sock=$1 conc=$2 kind=$3 run=$4 extra="" line rc
    [ "$sock" = inet+qa ] && extra=-A
    new_spec "$sock"
    echo "=== $sock c=$conc $kind run $run ($SPEC)" >>"$OUT/milter-$kind.log"
    if ! start_milter "$kind" "$SPEC"; then
	FAILED=1
	echo "$sock $conc $kind $run FAIL" >>"$RESULTS"
	return
    fi
    line=$("$OUT/loadgen" -s "$SPEC" -c "$conc" -d "$DURATION" \
	-w "$WARMUP" -m "$PER_SESSION" -p "$MPID" -W 5 $extra \
	-l "$sock/$conc/$kind/$run" 2>>"$OUT/loadgen.log")
    rc=$?
    stop_milter
    echo "$line" >>"$OUT/loadgen.log"
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
	FAILED=1
    fi
    printf '%s %s %s %s %s %s %s %s %s %s %s %s %s\n' "$sock" "$conc" \
	"$kind" "$run" "$(kv "$line" msgs_per_s)" "$(kv "$line" p50_us)" \
	"$(kv "$line" p99_us)" "$(kv "$line" cpu_us_per_msg)" \
	"$(kv "$line" rss_kib)" "$(kv "$line" hwm_kib)" \
	"$(kv "$line" errors)" "$(kv "$line" protocol)" \
	"$(kv "$line" reject_at)" >>"$RESULTS"
    printf '  %-8s c=%-3s %-9s run %s: %s msgs/s, p99 %s us, errors %s\n' \
	"$sock" "$conc" "$([ "$kind" = c ] && echo "$CNAME" \
	|| echo "$TNAME")" "$run" "$(kv "$line" msgs_per_s)" \
	"$(kv "$line" p99_us)" "$(kv "$line" errors)"
}

# ---------------------------------------------------------------------
# Load runs: C and Tcl interleaved.

CELLS=()
for sock in $SOCKETS; do
    for conc in $CONCS; do
	CELLS+=("$sock:$conc")
    done
done
for conc in $QA_CONCS; do
    case " $SOCKETS " in
	*" inet "*) CELLS+=("inet+qa:$conc") ;;
    esac
done

start=$(date +%s)
echo "load: ${#CELLS[@]} cells x 2 milters x $RUNS runs," \
    "${WARMUP}s warmup + ${DURATION}s each"
for cell in "${CELLS[@]}"; do
    sock=${cell%%:*}
    conc=${cell#*:}
    for run in $(seq "$RUNS"); do
	one_run "$sock" "$conc" c "$run"
	one_run "$sock" "$conc" tcl "$run"
    done
done

# ---------------------------------------------------------------------
# Memory per idle connection.

IDLE_C=NA
IDLE_T=NA
IDLE_THR_C=NA
IDLE_THR_T=NA
if [ "$IDLE" -gt 0 ]; then
    echo "idle: $IDLE connections per milter"
    for kind in c tcl; do
	new_spec unix
	if ! start_milter "$kind" "$SPEC"; then
	    FAILED=1
	    continue
	fi
	sleep 0.2
	line=$("$OUT/loadgen" -s "$SPEC" -I "$IDLE" -p "$MPID" -W 5 \
	    -l "idle/$kind" 2>>"$OUT/loadgen.log")
	rc=$?
	stop_milter
	echo "$line" >>"$OUT/loadgen.log"
	echo "idle $kind $(kv "$line" bytes_per_conn)" \
	    "$(kv "$line" threads) $(kv "$line" errors)" >>"$RESULTS"
	[ $rc -ne 0 ] && FAILED=1
	if [ "$kind" = c ]; then
	    IDLE_C=$(kv "$line" bytes_per_conn)
	    IDLE_THR_C=$(kv "$line" threads)
	else
	    IDLE_T=$(kv "$line" bytes_per_conn)
	    IDLE_THR_T=$(kv "$line" threads)
	fi
    done
fi
elapsed=$(( $(date +%s) - start ))

# ---------------------------------------------------------------------
# Report.

# med SOCK CONC KIND FIELD: the median of a result field over the runs.
med() {
    awk -v s="$1" -v c="$2" -v k="$3" -v f="$4" '
	$1 == s && $2 == c && $3 == k && $5 != "FAIL" && $f != "NA" {
	    v[n++] = $f
	}
	END {
	    if (n == 0) { print "NA"; exit }
	    # insertion sort, n is small
	    for (i = 1; i < n; i++) {
		x = v[i] + 0
		for (j = i - 1; j >= 0 && v[j] + 0 > x; j--) v[j + 1] = v[j]
		v[j + 1] = x
	    }
	    if (n % 2) print v[(n - 1) / 2]
	    else print (v[n / 2 - 1] + v[n / 2]) / 2
	}' "$RESULTS"
}

# errs SOCK CONC KIND: total errors over the runs (FAIL if a run failed).
errs() {
    awk -v s="$1" -v c="$2" -v k="$3" '
	$1 == s && $2 == c && $3 == k {
	    if ($5 == "FAIL" || $11 == "NA") f = 1; else n += $11
	}
	END { print (f ? "FAIL" : n + 0) }' "$RESULTS"
}

# fmt SCALE DECIMALS VALUE
fmt() {
    if [ "$3" = NA ]; then echo NA; else
	awk -v v="$3" -v s="$1" -v d="$2" \
	    'BEGIN { printf "%.*f", d, v / s }'
    fi
}

ratio() {
    if [ "$1" = NA ] || [ "$2" = NA ]; then echo NA; else
	awk -v a="$1" -v b="$2" \
	    'BEGIN { if (b + 0 == 0) print "NA"; else printf "%.2f", a / b }'
    fi
}

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
TCL_VERSION=$(echo 'puts [info patchlevel]' | "$TCLSH" 2>/dev/null)
LIBMILTER_PKG=$(dpkg-query -W -f '${Version}' libmilter-dev 2>/dev/null \
    || echo unknown)
LIBMILTER_RT=$("$OUT/cmilter" -V 2>/dev/null)

echo
echo "TclMilter benchmark: blacklist milter, $PER_SESSION message(s) per" \
    "milter connection, 2 RCPT, 10 headers, 2 KiB body, 30% rejected"
echo "machine: nproc=$(nproc) cpu=\"$CPU_MODEL\" kernel=$(uname -r)" \
    "tcl=$TCL_VERSION tclmilter=$TCLMILTER_VERSION" \
    "libmilter=$LIBMILTER_PKG (runtime $LIBMILTER_RT)"
echo "runs: $RUNS per cell (medians), ${WARMUP}s warmup + ${DURATION}s load," \
    "loadgen on the same host; total ${elapsed}s"
echo
printf '%-8s %5s %-10s %9s %8s %8s %9s %8s %8s %6s\n' \
    socket conc milter msgs/s "p50 ms" "p99 ms" "CPU us/m" "RSS MiB" \
    "HWM MiB" errors
printf '%-8s %5s %-10s %9s %8s %8s %9s %8s %8s %6s\n' \
    -------- ----- ---------- --------- -------- -------- --------- \
    -------- -------- ------
for cell in "${CELLS[@]}"; do
    sock=${cell%%:*}
    conc=${cell#*:}
    for kind in c tcl; do
	name=$CNAME
	[ "$kind" = tcl ] && name=$TNAME
	e=$(errs "$sock" "$conc" "$kind")
	[ "$e" != 0 ] && FAILED=1
	printf '%-8s %5s %-10s %9s %8s %8s %9s %8s %8s %6s\n' \
	    "$sock" "$conc" "$name" \
	    "$(fmt 1 0 "$(med "$sock" "$conc" "$kind" 5)")" \
	    "$(fmt 1000 2 "$(med "$sock" "$conc" "$kind" 6)")" \
	    "$(fmt 1000 2 "$(med "$sock" "$conc" "$kind" 7)")" \
	    "$(fmt 1 0 "$(med "$sock" "$conc" "$kind" 8)")" \
	    "$(fmt 1024 1 "$(med "$sock" "$conc" "$kind" 9)")" \
	    "$(fmt 1024 1 "$(med "$sock" "$conc" "$kind" 10)")" "$e"
    done
    printf '%-8s %5s %-10s %9s %8s %8s %9s\n' "" "" "ratio T/C" \
	"$(ratio "$(med "$sock" "$conc" tcl 5)" "$(med "$sock" "$conc" c 5)")" \
	"" \
	"$(ratio "$(med "$sock" "$conc" tcl 7)" "$(med "$sock" "$conc" c 7)")" \
	"$(ratio "$(med "$sock" "$conc" tcl 8)" "$(med "$sock" "$conc" c 8)")"
done
echo
if [ "$IDLE" -gt 0 ]; then
    printf 'idle: %d connections (OPTNEG + CONNECT, held), RSS growth per' \
	"$IDLE"
    printf ' connection: %s %s bytes (%s threads), %s %s bytes (%s threads)\n' \
	"$CNAME" "$IDLE_C" "$IDLE_THR_C" "$TNAME" "$IDLE_T" "$IDLE_THR_T"
fi
first() {
    awk -v k="$1" -v f="$2" '$3 == k && $f != "NA" && $f != "" \
	{ print $f; exit }' "$RESULTS"
}
echo "protocol bits negotiated: $CNAME $(first c 12), $TNAME $(first tcl 12)"
echo "rejections by stage (first run): $CNAME $(first c 13)," \
    "$TNAME $(first tcl 13)"
cat <<EOF
notes: msgs/s counts verdicts per second; latency is MAIL to final verdict.
  CPU us/m is the milter process's utime+stime over the measured window
  divided by the messages; RSS is VmRSS at the end of it, HWM is VmHWM.
  inet+qa: TCP with TCP_QUICKACK set by the load generator, which hides
  the ~40 ms Nagle/delayed-ACK stall a milter pays when it writes its end
  of message replies as separate small packets without TCP_NODELAY.
  ratio T/C: TclMilter / libmilter for msgs/s, p99 and CPU.
raw results: $RESULTS, $OUT/loadgen.log
EOF
if [ "$FAILED" != 0 ]; then
    echo "BENCHMARK FAILED: errors or failed runs (see $OUT/loadgen.log)"
    exit 1
fi
exit 0
