# all.tcl --
#
#	Runs the TclMilter test suite: every *.test file in this directory,
#	then those in each subdirectory that has some (tests/mta/, ...).  Any
#	tcltest option may be given on the command line, for example
#
#	    tclsh tests/all.tcl -file conn.test -match milter-3.* -verbose bps
#
#	Test files are sourced into this interpreter by default (-singleproc
#	1); pass "-singleproc 0" to run each in its own tclsh.  The script
#	ends with the usual tcltest totals and a line "Totals: N passed, N
#	failed, N skipped", and exits with status 1 when a test failed, a test
#	file raised an error, or no test ran at all.
#
#	Temporary files go to a fresh directory /tmp/tclmilter-tests-PID
#	(under $TMPDIR if set), removed at the end, so that runs do not litter
#	the build directory or collide with each other; -tmpdir overrides.
#
#	When the environment says CI=true (or TCLMILTER_NO_SKIP=1), a test
#	skipped because one of our own constraints was false (a missing MTA,
#	miltertest, ...) also makes the run fail: CI must run everything.
#	tcltest's built-in constraints (knownBug, win, notRoot, ...) and the
#	-skip/-match/-limitconstraints filters never do.  TCLMILTER_NO_SKIP=0
#	turns the check off.
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
    variable testsDir [file normalize [file dirname [info script]]]
    variable counts [dict create Total 0 Passed 0 Skipped 0 Failed 0]
    variable skipped [dict create]
    variable last {}
    variable lastSkipped {}
    variable fileErrors 0
    variable dirErrors 0
    variable testFiles {}

    # Constraints defined by tcltest itself, and its skip reasons for the
    # user's own filters.  Skips for these are never a CI failure.
    variable builtinConstraints [concat \
	    [array names ::tcltest::ConstraintInitializer] \
	    userSpecifiedSkip userSpecifiedNonMatch \
	    userSpecifiedLimitConstraint]
}

# ::tcltest::cleanupTestsHook --
#
#	Called by tcltest::cleanupTests just before it prints and resets its
#	counters.  The counters are cumulative within one runAllTests, so the
#	last call made for a directory holds that directory's totals.
#
# Results:
#	None.
#
# Side effects:
#	Records the counters in ::milter_testsuite::last/lastSkipped.
#	(The suite's namespace is not under ::milter, which the package
#	creates.)

proc ::tcltest::cleanupTestsHook {} {
    variable numTests
    variable skippedBecause
    set ::milter_testsuite::last [array get numTests]
    set ::milter_testsuite::lastSkipped [array get skippedBecause]
}

# ::milter_testsuite::SourceLeave --
#
#	Execution trace on ::source: counts test files that raised an error
#	(tcltest reports them as "Test file error" and goes on).
#
# Results:
#	None.
#
# Side effects:
#	Increments ::milter_testsuite::fileErrors.

proc ::milter_testsuite::SourceLeave {cmd code result op} {
    variable testFiles
    variable fileErrors
    if {$code == 1 && [llength $cmd] >= 2
	    && [file normalize [lindex $cmd end]] in $testFiles} {
	incr fileErrors
    }
}

# ::milter_testsuite::StrictSkips --
#
#	Tells whether a skip for one of our constraints must fail the run.
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
    return [expr {[info exists env(CI)]
	    && [string is true -strict $env(CI)]}]
}

# ::milter_testsuite::TestDirs --
#
#	Lists the directories to run: this one, then each subdirectory that
#	holds *.test files, honouring tcltest's -relateddir and -asidefromdir.
#
# Results:
#	A list of absolute directory names.
#
# Side effects:
#	None.

proc ::milter_testsuite::TestDirs {related aside} {
    variable testsDir
    set dirs [list $testsDir]
    foreach dir [lsort [glob -nocomplain -type d -directory $testsDir *]] {
	set tail [file tail $dir]
	if {![llength [glob -nocomplain -directory $dir *.test]]} {
	    continue
	}
	set keep 0
	foreach pattern $related {
	    if {[string match $pattern $tail]} {
		set keep 1
	    }
	}
	foreach pattern $aside {
	    if {[string match $pattern $tail]} {
		set keep 0
	    }
	}
	if {$keep} {
	    lappend dirs $dir
	}
    }
    return $dirs
}

# ::milter_testsuite::Run --
#
#	Runs the suite and works out the exit status.
#
# Results:
#	0 if everything passed, 1 otherwise.
#
# Side effects:
#	Runs the tests; prints per-directory and overall totals.

proc ::milter_testsuite::Run {argv} {
    variable testsDir
    variable counts
    variable skipped
    variable last
    variable lastSkipped
    variable fileErrors
    variable dirErrors
    variable testFiles
    variable builtinConstraints

    ::tcltest::configure -singleproc 1 -testdir $testsDir
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
    set related [::tcltest::configure -relateddir]
    set aside [::tcltest::configure -asidefromdir]
    # We walk the subdirectories ourselves, so runAllTests must not.
    ::tcltest::configure -asidefromdir *

    foreach dir [TestDirs $related $aside] {
	if {$dir ne $testsDir} {
	    puts [::tcltest::outputChannel] \
		    "\n[string repeat ~ 44]\n[file tail $dir]/ tests"
	}
	::tcltest::configure -testdir $dir
	set last {}
	set lastSkipped {}
	set testFiles {}
	foreach file [glob -nocomplain -directory $dir *.test] {
	    lappend testFiles [file normalize $file]
	}
	set before $fileErrors
	trace add execution ::source leave ::milter_testsuite::SourceLeave
	# At global level: in -singleproc mode runAllTests sources each
	# test file with "uplevel 1", and test files set globals.
	set rc [uplevel #0 [list ::tcltest::runAllTests]]
	trace remove execution ::source leave ::milter_testsuite::SourceLeave
	if {$rc} {
	    set dirFailed [expr {
		[dict exists $last Failed] ? [dict get $last Failed] : 0}]
	    if {$dirFailed == 0 && $fileErrors == $before} {
		# runAllTests failed without a failed test and without an
		# error we saw (-singleproc 0): count the directory once.
		incr dirErrors
	    }
	}
	foreach key {Total Passed Skipped Failed} {
	    if {[dict exists $last $key]} {
		dict incr counts $key [dict get $last $key]
	    }
	}
	foreach {constraint n} $lastSkipped {
	    dict incr skipped $constraint $n
	}
    }

    set out [::tcltest::outputChannel]
    set status 0
    dict with counts {}
    if {$Failed > 0} {
	set status 1
    }
    incr fileErrors $dirErrors
    if {$fileErrors > 0} {
	puts $out "\n$fileErrors test file[expr {$fileErrors == 1 ? "" : "s"}]\
		raised errors (see \"Test file error\" above); each counts\
		as one failure below"
	set status 1
    }
    if {$Total == 0} {
	puts $out "\nno test was run"
	set status 1
    }
    if {[StrictSkips]} {
	set missing {}
	dict for {constraint n} $skipped {
	    if {$constraint ni $builtinConstraints} {
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
    return $status
}

exit [::milter_testsuite::Run $argv]
