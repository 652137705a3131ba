#!/usr/bin/env tclsh
#
# blacklist-bench.tcl --
#
#	The TclMilter side of the benchmark: the address blacklist milter of
#	the TclMilter manual, plus what bench/cmilter.c does so that both
#	milters do the same work:
#
#	  envfrom  reject (550 5.7.1) when any MAIL argument is blacklisted;
#	  header   reject (550 5.7.1) a From: header naming a blacklisted
#		   address;
#	  eom	   add "X-Scanned: tclmilter" and continue (accept).
#
#	Usage: tclsh blacklist-bench.tcl CONNSPEC ?WORKERS?
#	(run with TCLLIBPATH pointing at the build directory)
#
#	WORKERS > 0 runs the callbacks in that many worker threads
#	(-workers N -workerinit SCRIPT); a build without -workers makes it
#	print "n/a: ..." on stderr and exit with status 3.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter

if {[llength $argv] ni {1 2} || ([llength $argv] == 2
	&& ![string is integer -strict [lindex $argv 1]])} {
    puts stderr "usage: $argv0 CONNSPEC ?WORKERS?"
    exit 2
}
lassign $argv connspec workers

# The callbacks, as one script: the owner evaluates it, and with
# WORKERS > 0 it is also the -workerinit script of every worker
# interpreter. blacklist-common.tcl has the blacklist and the header and
# eom callbacks; the envelope check is this milter's own.

set f [open [file join [file dirname [info script]] blacklist-common.tcl]]
set code [read $f]
close $f
append code {
    proc bl_envfrom {ctx argv} {
	foreach address $argv {
	    if {[is_blacklisted $address]} {
		$ctx setreply 550 5.7.1 "Sender is blacklisted"
		return SMFIS_REJECT
	    }
	}
	return SMFIS_CONTINUE
    }
}

# WORKERS 0 (or none) leaves -workers alone: today's behaviour, and the
# only one a build without workers has.

if {$workers ne "" && $workers > 0} {
    if {[catch {milter configure -workers $workers -workerinit $code} \
	    msg]} {
	puts stderr "n/a: -workers not supported by this build: $msg"
	exit 3
    }
}
namespace eval :: $code

milter configure -name BlacklistBench -connection $connspec
milter register envfrom bl_envfrom
milter register header bl_header
milter register eom bl_eom
milter main
