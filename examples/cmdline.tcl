# cmdline.tcl --
#
#	The command line of the smaller example milters (routing.tcl and
#	tagger.tcl source this file from their own directory):
#	    tclsh SCRIPT ?-connection? ?SPEC?
#	blacklist.tcl spells the same out itself, since it is meant to be
#	copied and installed as a single file (see README.md).
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval example {}

# example::connectionSpec --
#
#	The connection spec given on the command line: the only argument,
#	after an optional -connection.  More arguments print the usage and
#	exit with status 2.
#
# Arguments:
#	default	The spec when there is no argument.
#
# Results:
#	The spec.

proc example::connectionSpec {default} {
    set args $::argv
    if {[lindex $args 0] eq "-connection"} {
	set args [lrange $args 1 end]
    }
    if {[llength $args] > 1} {
	puts stderr "usage: [file tail $::argv0] ?-connection? ?spec?"
	exit 2
    }
    if {[llength $args] == 1} {
	return [lindex $args 0]
    }
    return $default
}
