# all.tcl --
#
#	Runs the TclMilter test suite, every *.test file in this directory,
#	with any tcltest option given on the command line, for example
#
#	    tclsh tests/all.tcl -file context.test -match ctx-3.* -verbose bps
#
#	Test files are sourced into this interpreter (tcltest's
#	-singleproc 1), at global level; "-singleproc 0" runs each in its
#	own tclsh.  Temporary files go to a fresh directory
#	/tmp/tclmilter-tests-PID (under $TMPDIR if set), removed at the end;
#	-tmpdir overrides.  The helpers the files share are harness.tcl's.
#
#	The run ends with a line "Totals: N passed, N failed, N skipped" and
#	exits with status 1 when a test failed, a test file raised an error
#	(counted as one failure), or no test ran.  When the environment says
#	CI=true (or TCLMILTER_NO_SKIP=1), a test skipped because one of our
#	own constraints was false (a missing MTA, miltertest, ...) also
#	fails the run: CI must run everything.  tcltest's own constraints
#	and the -skip/-match filters never do; TCLMILTER_NO_SKIP=0 turns the
#	check off.
#
#	Under "make asan-test" the suite runs in an ASan-instrumented tclsh
#	(tests/sanitizers/tclsh.c), and so do the child tclsh processes the
#	tests start.  The Makefile passes TCLMILTER_CHILD_ASAN_OPTIONS: this
#	tclsh keeps the options it started with (leak check at exit), and its
#	children get these instead (no leak check).
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require Tcl 8.6

# Before tcltest records the original environment: options for children.
if {[info exists ::env(TCLMILTER_CHILD_ASAN_OPTIONS)]} {
    set ::env(ASAN_OPTIONS) $::env(TCLMILTER_CHILD_ASAN_OPTIONS)
    unset ::env(TCLMILTER_CHILD_ASAN_OPTIONS)
}

package require tcltest 2.5

namespace eval ::milter_testsuite {
    variable counts {}		;# tcltest's numTests at the end
    variable skipped {}		;# constraint -> number of tests skipped
    variable fileErrors 0	;# test files that raised an error
}

# ::tcltest::cleanupTestsHook --
#
#	Called by tcltest::cleanupTests before it prints and resets its
#	counters; the last call, from runAllTests, holds the totals.
#
# Results:
#	None.
#
# Side effects:
#	Records the counters.  (The suite's namespace is not under ::milter,
#	which the package creates.)

proc ::tcltest::cleanupTestsHook {} {
    variable numTests
    variable skippedBecause
    set ::milter_testsuite::counts [array get numTests]
    set ::milter_testsuite::skipped [array get skippedBecause]
}

# ::milter_testsuite::SourceLeave --
#
#	Execution trace on ::source: counts the test files that raised an
#	error (tcltest reports "Test file error" and goes on).
#
# Results:
#	None.
#
# Side effects:
#	Increments fileErrors.

proc ::milter_testsuite::SourceLeave {cmd code result op} {
    variable fileErrors
    if {$code == 1 && [string match *.test [lindex $cmd end]]} {
	incr fileErrors
    }
}

# ::milter_testsuite::StrictSkips --
#
#	Tells whether a skip for one of our own constraints fails the run.
#
# Results:
#	1 under CI (CI=true) or with TCLMILTER_NO_SKIP=1, else 0.
#
# Side effects:
#	None.

proc ::milter_testsuite::StrictSkips {} {
    global env
    if {[info exists env(TCLMILTER_NO_SKIP)]
	    && [string is boolean -strict $env(TCLMILTER_NO_SKIP)]} {
	return [string is true $env(TCLMILTER_NO_SKIP)]
    }
    return [expr {[info exists env(CI)] && [string is true -strict $env(CI)]}]
}

# ::milter_testsuite::Run --
#
#	Runs the suite and works out the exit status.
#
# Results:
#	0 if everything passed, 1 otherwise.
#
# Side effects:
#	Runs the tests; prints the totals.

proc ::milter_testsuite::Run {argv} {
    variable counts
    variable skipped
    variable fileErrors

    # Skips for these are never a CI failure: tcltest's own constraints
    # and its reasons for the user's filters.
    set builtin [concat [array names ::tcltest::ConstraintInitializer] \
	    userSpecifiedSkip userSpecifiedNonMatch \
	    userSpecifiedLimitConstraint]
    ::tcltest::configure -singleproc 1 \
	    -testdir [file dirname [file normalize [info script]]]
    set ownTmp {}
    if {"-tmpdir" ni $argv} {
	set base /tmp
	if {[info exists ::env(TMPDIR)] && [file isdirectory $::env(TMPDIR)]} {
	    set base $::env(TMPDIR)
	}
	set ownTmp [file join $base tclmilter-tests-[pid]]
	file delete -force $ownTmp
	file mkdir $ownTmp
	::tcltest::configure -tmpdir $ownTmp
    }
    ::tcltest::configure {*}$argv

    trace add execution ::source leave ::milter_testsuite::SourceLeave
    # At global level: runAllTests sources each file with "uplevel 1".
    set status [uplevel #0 ::tcltest::runAllTests]
    trace remove execution ::source leave ::milter_testsuite::SourceLeave

    set out [::tcltest::outputChannel]
    set totals [dict merge {Total 0 Passed 0 Skipped 0 Failed 0} $counts]
    dict with totals {}
    if {$status && $Failed == 0 && $fileErrors == 0} {
	# A file failed in its own tclsh (-singleproc 0): count it once.
	set fileErrors 1
    }
    if {$fileErrors > 0} {
	puts $out "\n$fileErrors test file[expr {$fileErrors == 1 ? "" : "s"}]\
		raised errors (see \"Test file error\" above); each counts\
		as one failure below"
    }
    if {$Total == 0} {
	puts $out "\nno test was run"
	set status 1
    }
    if {[StrictSkips]} {
	set missing {}
	dict for {constraint n} $skipped {
	    if {$constraint ni $builtin} {
		lappend missing "$constraint ($n)"
	    }
	}
	if {[llength $missing]} {
	    puts $out "\nCI requires every test to run, but tests were\
		    skipped for these constraints: [join $missing {, }]"
	    set status 1
	}
    }
    if {$ownTmp ne ""} {
	catch {file delete -force $ownTmp}
    }
    puts $out "\nTotals: $Passed passed, [expr {$Failed + $fileErrors}]\
	    failed, $Skipped skipped"
    flush $out
    return [expr {$status || $Failed + $fileErrors > 0}]
}

exit [::milter_testsuite::Run $argv]
