#!/usr/bin/env tclsh
#
# slowlookup-bench.tcl --
#
#	The TclMilter side of the slow-lookup scenario of the benchmark:
#	what bench/cmilter.c does with -r, that is the blacklist milter of
#	blacklist-bench.tcl whose envelope check is a query to the local
#	reputation service bench/repsvc.c (which answers after a delay):
#
#	  envfrom  ask repsvc about the MAIL address; "listed" = reject
#		   (550 5.7.1);
#	  header   reject (550 5.7.1) a From: header naming a blacklisted
#		   address (local list, as in blacklist-bench.tcl);
#	  eom	   add "X-Scanned: tclmilter" and continue (accept).
#
#	Usage: tclsh slowlookup-bench.tcl MODE CONNSPEC REPSVC_PORT
#	(run with TCLLIBPATH pointing at the build directory)
#
#	MODE says how the wait for the answer is spent:
#
#	  block		-workers 0 (the default, today's behaviour): the
#			callback asks on a persistent blocking socket in the
#			owner thread, so every connection waits for every
#			lookup (about 1/delay messages per second at best);
#	  workers:N	-workers N -workerinit SCRIPT: each worker
#			interpreter, set up by SCRIPT, keeps its own
#			persistent blocking socket to repsvc, so N lookups
#			wait at once;
#	  coro		-coroutines 1: the lookup writes the query on a
#			non-blocking socket, sets a fileevent that resumes
#			the callback's coroutine and yields; the owner goes
#			on with other connections meanwhile. Idle sockets
#			are kept in a pool (at most one per concurrent
#			lookup) and reused.
#
#	A build whose milter configure does not know the option of MODE
#	makes it print "n/a: ..." on stderr and exit with status 3.
#	A failed lookup raises an error: the callback's background error
#	gives the -defaultreply, which the load generator counts as an
#	error.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter

if {[llength $argv] != 3
	|| ![regexp {^(block|workers:([1-9][0-9]*)|coro)$} \
		[lindex $argv 0] -> mode workers]
	|| ![string is integer -strict [lindex $argv 2]]} {
    puts stderr "usage: $argv0 block|workers:N|coro CONNSPEC REPSVC_PORT"
    exit 2
}
lassign $argv mode connspec port
if {[string match workers:* $mode]} {
    set mode workers
}

# The callbacks and their helpers, as one script: the owner evaluates it,
# and with workers it is also the -workerinit script of every worker
# interpreter. blacklist-common.tcl has the local blacklist and the header
# and eom callbacks; the lookup itself is appended below, per mode.

set f [open [file join [file dirname [info script]] blacklist-common.tcl]]
set code [read $f]
close $f
append code {
    namespace eval ::rep {
	variable port {}	;# repsvc's port (set below)
	variable sock {}	;# blocking modes: this interp's socket
	variable idle {}	;# coro mode: sockets free for a lookup
    }

    proc sl_envfrom {ctx argv} {
	if {[rep_lookup [lindex $argv 0]]} {
	    $ctx setreply 550 5.7.1 "Sender is blacklisted"
	    return SMFIS_REJECT
	}
	return SMFIS_CONTINUE
    }
}
append code [list set ::rep::port $port] \n

if {$mode ne "coro"} {
    append code {
	# rep_lookup --
	#
	#	Asks repsvc about an address on this interpreter's persistent
	#	blocking socket (opened on first use), waiting for the answer.
	#	Returns 1 if the address is listed.

	proc rep_lookup {address} {
	    if {$::rep::sock eq ""} {
		set ::rep::sock [socket 127.0.0.1 $::rep::port]
		fconfigure $::rep::sock -translation lf -buffering line
	    }
	    if {[catch {
		puts $::rep::sock $address
		gets $::rep::sock line
	    } n] || $n < 0} {
		catch {close $::rep::sock}
		set ::rep::sock ""
		return -code error -errorcode {BENCH REPSVC} \
		    "reputation lookup of \"$address\" failed"
	    }
	    return [expr {$line eq "listed"}]
	}
    }
} else {
    append code {
	# rep_lookup --
	#
	#	Asks repsvc about an address from inside the callback's
	#	coroutine: takes an idle non-blocking socket from the pool
	#	(or opens one), writes the query, and yields until a
	#	fileevent says the answer line is there (or 5 s passed).
	#	Returns 1 if the address is listed.

	proc rep_lookup {address} {
	    set me [info coroutine]
	    if {$me eq ""} {
		return -code error -errorcode {BENCH NOCORO} \
		    "rep_lookup called outside a coroutine"
	    }
	    if {[llength $::rep::idle]} {
		set sock [lindex $::rep::idle end]
		set ::rep::idle [lrange $::rep::idle 0 end-1]
	    } else {
		set sock [socket 127.0.0.1 $::rep::port]
		fconfigure $sock -blocking 0 -translation lf -buffering none
	    }
	    set timer [after 5000 [list $me timeout]]
	    set failed [catch {
		puts -nonewline $sock $address\n
		flush $sock
		fileevent $sock readable [list $me readable]
		while {[gets $sock line] < 0} {
		    if {[eof $sock]} {
			error "connection closed"
		    }
		    if {[yield] eq "timeout"} {
			error "timed out"
		    }
		}
		fileevent $sock readable {}
	    } msg]
	    after cancel $timer
	    if {$failed} {
		catch {close $sock}
		return -code error -errorcode {BENCH REPSVC} \
		    "reputation lookup of \"$address\" failed: $msg"
	    }
	    lappend ::rep::idle $sock
	    return [expr {$line eq "listed"}]
	}
    }
}

# Select the mode; a build without its option cannot run it.

switch -- $mode {
    workers {
	if {[catch {milter configure -workers $workers -workerinit $code} \
		msg]} {
	    puts stderr "n/a: -workers not supported by this build: $msg"
	    exit 3
	}
    }
    coro {
	if {[catch {milter configure -coroutines 1} msg]} {
	    puts stderr "n/a: -coroutines not supported by this build: $msg"
	    exit 3
	}
    }
}
namespace eval :: $code

milter configure -name SlowLookupBench -connection $connspec
milter register envfrom sl_envfrom
milter register header bl_header
milter register eom bl_eom
milter main
