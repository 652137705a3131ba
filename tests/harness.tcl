# harness.tcl --
#
#	The one helper library of the TclMilter tests, namespace ::tm.  A
#	test file sources it after loading tcltest:
#
#	    package require tcltest 2.5
#	    namespace import ::tcltest::*
#	    configure {*}$argv
#	    source [file join [file dirname [file normalize [info script]]] \
#		    harness.tcl]
#
#	and ends with ::tm::finish, then cleanupTests.  Its parts, by job:
#
#	  harness/base.tcl	waiting, temporary directories, files,
#				processes, ports, constraints, ::tm::finish
#	  harness/milter.tcl	the milter under test in this interpreter:
#				start and reset, recording callbacks, log
#				and background-error capture, milter::test
#				clients, the well-behaved connection of the
#				bad-input tests
#	  harness/raw.tcl	::tm::raw, a byte-level MTA
#	  harness/child.tcl	child tclsh processes (::tm::child ...)
#	  harness/dns.tcl	::tm::dns, a DNS server for the DNSBL examples
#	  harness/mta.tcl	real MTAs: the milter as a child process
#				(::tm::mta::milter), an SMTP client
#				(::tm::smtp), smtp-sink captures
#				(::tm::sink), sessions through Postfix
#				(mta/postfix.tcl) and Sendmail
#				(mta/sendmail.tcl)
#
#	The commands most tests use are exported; test files import them
#	with "namespace import ::tm::*".  Sourcing this file again (all.tcl
#	runs every test file in one interpreter) redefines the procedures
#	and keeps the state.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require tcltest 2.5

namespace eval ::tm {
    variable testDir [file dirname [file normalize [info script]]]
    variable srcDir [file dirname $testDir]
}

# tests/package/installed.tcl (::tm::installed) drives real MTAs in front
# of the installed package: it needs no milter in this interpreter.
foreach ::tm::part [expr {[info exists ::tm::installed]
	? {base child mta} : {base milter raw child dns mta}}] {
    source [file join $::tm::testDir harness $::tm::part.tcl]
}
unset ::tm::part
