# base.tcl --
#
#	The ground floor of the test harness (see ../harness.tcl): waiting
#	without blocking the event loop, temporary directories, files,
#	processes, free ports, the constraints every file may use, and
#	::tm::finish, which a test file calls at its end to stop everything
#	it started and remove its temporary directories.
#
#	Temporary directories are /tmp/tclmilter-t-PID-N (readable by the
#	MTAs' unprivileged users).  Those left by a test process that died
#	are removed, with the daemons named by their pid files, when this
#	file is sourced.  TCLMILTER_MTA_KEEP=1 keeps them (logs, configs).
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::tm {
    namespace export waitUntil scratchDir

    variable pids {}		;# background processes, killed by finish
    variable dirs {}		;# temporary directories, removed by finish
    variable cleanups {}	;# scripts run first by finish
    variable seq 0		;# temporary directory counter
    variable scratch {}		;# this test file's scratch directory
    variable wake 0		;# vwait variable of sleep
    variable givenPorts		;# port -> 1 for each freePort answer
    array set givenPorts {}
    variable keep [expr {[info exists ::env(TCLMILTER_MTA_KEEP)]
	    && [string is true -strict $::env(TCLMILTER_MTA_KEEP)]}]

    # Where this process and its children find the package: the
    # caller's TCLLIBPATH ("make test" sets it, also for the sanitizer
    # builds), else the source tree, which is also the build directory
    # of an in-tree build.  Never both: an in-tree build would shadow a
    # sanitizer build of the same version.
    # tests/package/installed.tcl sets ::tm::installed: it tests the
    # installed package, so neither.
    if {![info exists installed] && ![info exists ::env(TCLLIBPATH)]} {
	set ::env(TCLLIBPATH) [list $srcDir]
	if {$srcDir ni $::auto_path} {
	    lappend ::auto_path $srcDir
	}
    }
}

# ::tm::sleep --
#
#	Runs the event loop for a while.
#
# Results:
#	None.
#
# Side effects:
#	Services events for 'ms' milliseconds.

proc ::tm::sleep {ms} {
    variable wake
    set id [after $ms [list set [namespace current]::wake 1]]
    vwait [namespace current]::wake
    after cancel $id
    return
}

# ::tm::waitUntil --
#
#	Runs the event loop until a condition (an expression evaluated in
#	the caller's scope) is true, or at most 'ms' milliseconds, checking
#	every 10 ms.
#
# Results:
#	1 if the condition became true, 0 on time-out.
#
# Side effects:
#	Services events.

proc ::tm::waitUntil {condition {ms 5000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while {![uplevel 1 [list expr $condition]]} {
	if {[clock milliseconds] >= $deadline} {
	    return 0
	}
	sleep 10
    }
    return 1
}

# ::tm::tempdir --
#
#	Makes a new, empty temporary directory that the MTAs' users can
#	read, removed by finish (or earlier by rmtemp).
#
# Arguments:
#	tag	a suffix for the directory name (for reading logs)
#
# Results:
#	The absolute directory name.
#
# Side effects:
#	Creates the directory.

proc ::tm::tempdir {{tag ""}} {
    variable dirs
    variable seq
    while 1 {
	set dir /tmp/tclmilter-t-[pid]-[incr seq]$tag
	if {![file exists $dir]} {
	    break
	}
    }
    file mkdir $dir
    file attributes $dir -permissions 0755
    lappend dirs $dir
    return $dir
}

# ::tm::rmtemp --
#
#	Removes a temporary directory before finish does.
#
# Results:
#	None.
#
# Side effects:
#	Deletes the directory and everything in it; errors are ignored.

proc ::tm::rmtemp {dir} {
    variable dirs
    if {$dir ne ""} {
	catch {file delete -force -- $dir}
	set dirs [lsearch -all -inline -exact -not $dirs $dir]
    }
    return
}

# ::tm::scratchDir --
#
#	The scratch directory of the current test file (unix sockets,
#	small files), made on first use.
#
# Results:
#	An absolute directory name.
#
# Side effects:
#	May create the directory.

proc ::tm::scratchDir {} {
    variable scratch
    if {$scratch eq "" || ![file isdirectory $scratch]} {
	set scratch [tempdir -scratch]
    }
    return $scratch
}

# ::tm::readFile, writeFile --
#
#	Read a whole file (binary unless told), write one (no newline
#	added).
#
# Results:
#	The contents, or None.
#
# Side effects:
#	writeFile creates or replaces the file.

proc ::tm::readFile {path {translation binary}} {
    set f [open $path r]
    fconfigure $f -translation $translation
    set data [read $f]
    close $f
    return $data
}

proc ::tm::writeFile {path data} {
    set f [open $path w]
    puts -nonewline $f $data
    close $f
    return
}

# ::tm::alive --
#
#	Tells whether a process runs (a zombie has exited and only waits
#	to be reaped).
#
# Results:
#	1 or 0.
#
# Side effects:
#	None.

proc ::tm::alive {pid} {
    if {![file isdirectory /proc/$pid]} {
	return 0
    }
    if {[catch {open /proc/$pid/stat} f]} {
	return 0
    }
    set stat [read $f]
    close $f
    return [expr {[lindex [split [string range $stat \
	    [string last ")" $stat] end] " "] 1] ne "Z"}]
}

# ::tm::kill --
#
#	Ends a process: SIGTERM, then SIGKILL if it still lives after
#	'graceMs'.
#
# Results:
#	None.
#
# Side effects:
#	Signals the process and reaps it.

proc ::tm::kill {pid {graceMs 3000}} {
    if {![alive $pid]} {
	return
    }
    catch {exec kill -TERM $pid}
    if {![waitUntil {![::tm::alive $pid]} $graceMs]} {
	catch {exec kill -KILL $pid}
	waitUntil {![::tm::alive $pid]} 2000
    }
    # Tcl reaps detached children when it next runs exec.
    catch {exec true}
    return
}

# ::tm::background --
#
#	Starts a background process with its stdout and stderr going to
#	'outFile'; finish kills it.
#
# Results:
#	The pid.
#
# Side effects:
#	Starts the process.

proc ::tm::background {outFile args} {
    variable pids
    set pid [exec {*}$args >& $outFile &]
    lappend pids $pid
    return $pid
}

# ::tm::isRoot --
#
#	Tells whether this process runs as root.
#
# Results:
#	1 or 0.
#
# Side effects:
#	None.

proc ::tm::isRoot {} {
    return [expr {![catch {exec id -u} uid] && $uid == 0}]
}

# ::tm::freePort --
#
#	A TCP port on 'host' that nobody listens on right now.  A port is
#	free again once its probe is closed, so two calls made before
#	anything binds could get the same one: a port is never handed out
#	twice.
#
# Results:
#	A port number.
#
# Side effects:
#	Opens and closes a listening socket.

proc ::tm::freePort {{host 127.0.0.1}} {
    variable givenPorts
    while 1 {
	set s [socket -server {apply {args {}}} -myaddr $host 0]
	set port [lindex [fconfigure $s -sockname] 2]
	close $s
	if {![info exists givenPorts($port)]} {
	    set givenPorts($port) 1
	    return $port
	}
    }
}

# ::tm::listening --
#
#	Tells whether something listens on TCP 'port', from
#	/proc/net/tcp{,6}: asking makes no connection (no SMTP session, no
#	milter connection).
#
# Results:
#	1 or 0.
#
# Side effects:
#	None.

proc ::tm::listening {port {family inet}} {
    set file [expr {$family eq "inet6" ? "/proc/net/tcp6" : "/proc/net/tcp"}]
    set hex [format %04X $port]
    foreach line [lrange [split [readFile $file] \n] 1 end] {
	if {[string match *:$hex [lindex $line 1]]
		&& [lindex $line 3] eq "0A"} {
	    return 1
	}
    }
    return 0
}

# ::tm::atCleanup --
#
#	Registers a script that finish runs (last registered, first run)
#	before it kills the processes: MTA instances stop this way.
#
# Results:
#	None.
#
# Side effects:
#	Remembers the script.

proc ::tm::atCleanup {script} {
    variable cleanups
    lappend cleanups $script
    return
}

# ::tm::finish --
#
#	The end of every test file: stops the milter under test, closes
#	every connection, kills the child and background processes, runs
#	the atCleanup scripts and removes the temporary directories.  Safe
#	to call more than once.
#
# Results:
#	None.
#
# Side effects:
#	As above; errors are reported on stderr, not raised.

proc ::tm::finish {} {
    variable cleanups
    variable pids
    variable dirs
    variable keep
    variable scratch
    if {[llength [info commands ::tm::stopMilter]]} {
	stopMilter		;# not loaded for tests/package/installed.tcl
    }
    childKillAll
    foreach script [lreverse $cleanups] {
	if {[catch {uplevel #0 $script} msg]} {
	    puts stderr "cleanup: $script: $msg"
	}
    }
    set cleanups {}
    foreach pid [lreverse $pids] {
	kill $pid
    }
    set pids {}
    if {!$keep} {
	foreach dir $dirs {
	    catch {file delete -force -- $dir}
	}
    } elseif {[llength $dirs]} {
	puts stderr "cleanup: kept [join $dirs {, }]"
    }
    set dirs {}
    set scratch {}
    return
}

# ::tm::cleanupStale --
#
#	Removes what an earlier test process that died left behind: the
#	daemons named by pid files in its temporary directories, and the
#	directories.
#
# Results:
#	None.
#
# Side effects:
#	Kills processes, deletes directories.

proc ::tm::cleanupStale {} {
    foreach dir [glob -nocomplain -types d /tmp/tclmilter-t-*] {
	if {![regexp {^tclmilter-t-(\d+)-} [file tail $dir] -> owner]
		|| $owner == [pid] || [alive $owner]} {
	    continue
	}
	foreach pidFile [glob -nocomplain $dir/spool/pid/master.pid \
		$dir/*.pid $dir/*/*.pid] {
	    if {![catch {string trim [readFile $pidFile]} pid]
		    && [string is integer -strict $pid]} {
		kill $pid 1000
	    }
	}
	catch {file delete -force -- $dir}
    }
    return
}

# ::tm::libpath --
#
#	The TCLLIBPATH for child processes that must load the TclMilter
#	under test: this process's TCLLIBPATH (see above), then this
#	interpreter's auto_path.
#
# Results:
#	A Tcl list of directories.
#
# Side effects:
#	None.

proc ::tm::libpath {} {
    set path $::env(TCLLIBPATH)
    foreach dir $::auto_path {
	if {$dir ni $path} {
	    lappend path $dir
	}
    }
    return $path
}

# ::tm::ProbeIPv6 --
#
#	Tells whether IPv6 loopback works: a listener on ::1 accepts a
#	connection.
#
# Results:
#	1 or 0.
#
# Side effects:
#	Opens and closes sockets.

proc ::tm::ProbeIPv6 {} {
    if {[catch {socket -server {apply {{c a p} {close $c}}} \
	    -myaddr ::1 0} server]} {
	return 0
    }
    set port [lindex [chan configure $server -sockname] 2]
    set ok [expr {![catch {socket ::1 $port} chan]}]
    if {$ok} {
	close $chan
    }
    close $server
    return $ok
}

::tm::cleanupStale

# Constraints: perl (staleSocket, the unix socket relay), IPv6 loopback,
# and the Thread package (milter stop from another thread).
tcltest::testConstraint perl [expr {[auto_execok perl] ne ""}]
tcltest::testConstraint ipv6 [::tm::ProbeIPv6]
tcltest::testConstraint thread [expr {![catch {package require Thread}]}]
