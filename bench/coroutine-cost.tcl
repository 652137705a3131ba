#!/usr/bin/env tclsh
#
# coroutine-cost.tcl --
#
#	What a coroutine per callback costs (milter configure -coroutines).
#	Runs the same messages through a milter in this interpreter, with
#	the milter::test client as the MTA in the same thread, once with
#	-coroutines 0, once with -coroutines 1 (callbacks that do not
#	yield), and once with -coroutines 1 where every callback yields once
#	and is resumed from the event loop. Every event has a callback that
#	returns SMFIS_CONTINUE. Prints the wall time per callback; the
#	difference between the modes is the cost of the coroutine (the
#	client's share of the time is the same in every mode).
#
#	Usage: tclsh coroutine-cost.tcl ?MESSAGES? ?ROUNDS?
#	(default 300 messages, best of 5 rounds; run with TCLLIBPATH
#	pointing at the build directory, e.g.
#	TCLLIBPATH=$PWD tclsh bench/coroutine-cost.tcl)
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter
package require milter::test

set messages [expr {[llength $argv] > 0 ? [lindex $argv 0] : 300}]
set rounds [expr {[llength $argv] > 1 ? [lindex $argv 1] : 5}]

set calls 0
set yield 0

proc cb {ctx args} {
    incr ::calls
    if {$::yield} {
	after 0 [info coroutine]
	yield
    }
    return SMFIS_CONTINUE
}

foreach event {negotiate connect helo envfrom envrcpt data header eoh body
	eom abort close} {
    milter register $event cb
}
# A unix socket: no Nagle delays on the many small packets.
set sock /tmp/coroutine-cost-[pid].sock
milter configure -connection unix:$sock
milter start
set addr [milter address]

# A message with five headers and a short body: MAIL, RCPT, DATA, five
# HEADERs, EOH, BODY, EOM, eleven callbacks.
set text "From: a@example.org\nTo: b@example.org\nSubject: bench\n"
append text "Message-ID: <1@example.org>\nX-Bench: yes\n\nHello.\n"

# run --
#	One session with count messages.  Returns {microseconds callbacks}.

proc run {count} {
    global addr text
    set ::calls 0
    set start [clock microseconds]
    set s [milter::test::open $addr]
    $s connect client.example.org inet 2525 192.0.2.1
    $s helo client.example.org
    for {set i 0} {$i < $count} {incr i} {
	$s message -text $text
    }
    $s quit
    # The close callback runs after the client has gone.
    while {$::calls < 3 + 11 * $count + 1} {
	after 1 {set ::tick 1}
	vwait ::tick
    }
    return [list [expr {[clock microseconds] - $start}] $::calls]
}

# Warm up (bytecode, allocator, sockets).
run 20

# The modes take turns, round after round, so that a busy moment of the
# machine does not fall on one mode only; the best round of each counts.
set modes {
    "-coroutines 0" 0 0
    "-coroutines 1" 1 0
    "-coroutines 1, yield" 1 1
}
array set best {}
for {set r 0} {$r < $rounds} {incr r} {
    foreach {label coroutines yield} $modes {
	milter configure -coroutines $coroutines
	set ::yield $yield
	lassign [run $messages] us n
	set per [expr {double($us) / $n}]
	if {![info exists best($label)] || $per < $best($label)} {
	    set best($label) $per
	}
    }
}
set results {}
foreach {label coroutines yield} $modes {
    lappend results $label $best($label) $n
}

puts [format "%-22s %10s %12s %14s" mode callbacks "us/callback" \
	"extra us"]
set base [lindex $results 1]
foreach {label per n} $results {
    puts [format "%-22s %10d %12.2f %14.2f" $label $n $per \
	    [expr {$per - $base}]]
}

# The same overhead in pure Tcl, without the milter: a procedure called
# directly, and the same call as the body of a new coroutine.
proc plain {a b} {return SMFIS_CONTINUE}
set n 100000
set t0 [clock microseconds]
for {set i 0} {$i < $n} {incr i} {
    plain x y
}
set t1 [clock microseconds]
for {set i 0} {$i < $n} {incr i} {
    coroutine ::c$i plain x y
}
set t2 [clock microseconds]
puts [format "pure Tcl: call %.2f us, coroutine + call %.2f us" \
	[expr {double($t1 - $t0) / $n}] [expr {double($t2 - $t1) / $n}]]

milter stop
while {[milter status] ne "idle"} {
    after 10 {set ::tick 1}
    vwait ::tick
}
