# workers.tcl --
#
#	A TclMilter filter whose callbacks run in worker interpreters
#	(-workers 2), for tests/postfix.test.  The callbacks exist only in
#	the workers, defined by -workerinit; each logs what it saw, with the
#	worker's thread id, so a test can tell where it ran.
#
# Usage:
#	tclsh workers.tcl CONNSPEC LOGFILE
#
#	CONNSPEC	the -connection spec.
#	LOGFILE		one Tcl list per line; the first is "ready ADDRESS
#			OWNER-THREAD" once the milter listens.
#
# Verdicts:
#	MAIL FROM:<reject-worker@...>	550 5.7.1 text, SMFIS_REJECT
#	end of message			header X-Worker-Thread: the thread
#					id of the worker, SMFIS_CONTINUE
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require TclMilter
package require Thread

proc log {path args} {
    set f [open $path a]
    fconfigure $f -encoding utf-8
    puts $f $args
    close $f
}

lassign $argv spec path
if {[llength $argv] != 2} {
    puts stderr "usage: workers.tcl CONNSPEC LOGFILE"
    exit 2
}

milter configure -name workers -connection $spec -workers 2 \
	-workerinit [string map [list @LOG@ [list $path] \
	@LOGPROC@ [list [info args log] [info body log]]] {
    package require Thread
    proc log @LOGPROC@
    set ::path @LOG@

    proc w_connect {ctx hostname addrInfo} {
	log $::path connect [thread::id]
	return SMFIS_CONTINUE
    }

    proc w_envfrom {ctx argv} {
	log $::path envfrom [thread::id] [lindex $argv 0]
	if {[string match -nocase <reject-worker@* [lindex $argv 0]]} {
	    $ctx setreply 550 5.7.1 "sender rejected by a worker"
	    return SMFIS_REJECT
	}
	return SMFIS_CONTINUE
    }

    proc w_eom {ctx} {
	log $::path eom [thread::id]
	$ctx addheader X-Worker-Thread [thread::id]
	return SMFIS_CONTINUE
    }

    proc w_close {ctx} {
	log $::path close [thread::id]
	return SMFIS_CONTINUE
    }
}]
foreach event {connect envfrom eom close} {
    milter register $event w_$event
}
milter start
log $path ready [milter address] [thread::id]
milter main
log $path stopped
