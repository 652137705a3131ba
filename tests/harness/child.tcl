# child.tcl --
#
#	Child processes of the tests (see ../harness.tcl): spawn starts a
#	program whose stdout is read line by line (childLine, childFind),
#	whose stdin takes lines (childSay) and whose stderr goes to a file
#	that childWait returns with the exit status; child runs a tclsh
#	script that way.  childKillAll (called by finish) ends them all.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::tm {
    variable children		;# child id -> state dict
    array set children {}
    variable childCount 0
}

# ::tm::spawn --
#
#	Starts a process ('command' is a list: program and arguments).  Its
#	stdout is read line by line (childLine), its stdin is open for
#	childSay, its stderr goes to a file that childWait reads.
#
# Results:
#	The child's id.
#
# Side effects:
#	Starts the process in a new temporary directory.

proc ::tm::spawn {command} {
    variable children
    variable childCount
    set dir [tempdir]
    set err [file join $dir stderr]
    set chan [::open |[list {*}$command 2> $err] r+]
    chan configure $chan -blocking 0 -buffering line
    set id child[incr childCount]
    set children($id) [dict create chan $chan pid [pid $chan] dir $dir \
	    err $err lines {} eof 0]
    chan event $chan readable [list ::tm::ChildReadable $id]
    return $id
}

# ::tm::child --
#
#	Spawns a tclsh (the one running the tests) on 'script', with the
#	arguments.
#
# Results:
#	The child's id.
#
# Side effects:
#	Writes the script to a temporary file; starts the process.

proc ::tm::child {script args} {
    set file [file join [tempdir] child.tcl]
    writeFile $file $script\n
    set id [spawn [list [info nameofexecutable] $file {*}$args]]
    dict set ::tm::children($id) script [file dirname $file]
    return $id
}

# ::tm::childShell --
#
#	Spawns 'command' (a list) through "sh -c", after the shell commands
#	in 'prefix' (for example "ulimit -n 8192;").
#
# Results:
#	The child's id.
#
# Side effects:
#	Starts the process.

proc ::tm::childShell {prefix command} {
    return [spawn [list sh -c "$prefix exec \"\$@\"" sh {*}$command]]
}

# ::tm::ChildReadable --
#
#	Readable handler of a child's stdout.
#
# Results:
#	None.
#
# Side effects:
#	Appends the complete lines to the child's lines; notes EOF.

proc ::tm::ChildReadable {id} {
    variable children
    set chan [dict get $children($id) chan]
    while {[gets $chan line] >= 0} {
	dict lappend children($id) lines $line
    }
    if {[chan eof $chan]} {
	dict set children($id) eof 1
	chan event $chan readable {}
    }
}

# ::tm::childLine, childFind --
#
#	Wait for a stdout line of a child that matches a glob pattern.
#	childLine removes it and the lines before it; childFind removes only
#	that line, so that lines may be looked for in any order.
#
# Results:
#	The line, or "" on time-out or EOF.
#
# Side effects:
#	Services events while waiting.

proc ::tm::childLine {id pattern {ms 10000}} {
    return [ChildTake $id $pattern $ms 1]
}

proc ::tm::childFind {id pattern {ms 10000}} {
    return [ChildTake $id $pattern $ms 0]
}

proc ::tm::ChildTake {id pattern ms before} {
    variable children
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
	set lines [dict get $children($id) lines]
	set i [lsearch -glob $lines $pattern]
	if {$i >= 0} {
	    set first [expr {$before ? 0 : $i}]
	    dict set children($id) lines [lreplace $lines $first $i]
	    return [lindex $lines $i]
	}
	if {[dict get $children($id) eof]
		|| [clock milliseconds] >= $deadline} {
	    return {}
	}
	sleep 10
    }
}

# ::tm::childSay --
#
#	Writes a line to the child's stdin.
#
# Results:
#	1, or 0 when the child is gone (its exit status then tells why).
#
# Side effects:
#	Writes to the pipe.

proc ::tm::childSay {id line} {
    variable children
    set chan [dict get $children($id) chan]
    return [expr {![catch {
	puts $chan $line
	flush $chan
    }]}]
}

# ::tm::childPid --
#
#	The process id of a child (the last of its pipeline).
#
# Results:
#	A pid.
#
# Side effects:
#	None.

proc ::tm::childPid {id} {
    variable children
    return [lindex [dict get $children($id) pid] end]
}

# ::tm::childWait --
#
#	Waits at most 'ms' for the child to exit, then kills it with
#	SIGKILL.
#
# Results:
#	{status stderr}: status is the exit code, "signal NAME" when a
#	signal killed it, or "timeout".
#
# Side effects:
#	Services events while waiting; forgets the child and removes its
#	temporary directories.

proc ::tm::childWait {id {ms 20000}} {
    variable children
    set st $children($id)
    set chan [dict get $st chan]
    set deadline [expr {[clock milliseconds] + $ms}]
    while {![dict get $children($id) eof]
	    && [clock milliseconds] < $deadline} {
	sleep 10
    }
    set status 0
    if {![dict get $children($id) eof]} {
	set status timeout
	foreach p [dict get $st pid] {
	    catch {exec kill -KILL $p}
	}
    }
    chan event $chan readable {}
    chan configure $chan -blocking 1
    if {[catch {::close $chan} msg opts]} {
	set code [dict get $opts -errorcode]
	switch -- [lindex $code 0] {
	    CHILDSTATUS {
		if {$status ne "timeout"} {
		    set status [lindex $code 2]
		}
	    }
	    CHILDKILLED {
		if {$status ne "timeout"} {
		    set status [list signal [lindex $code 2]]
		}
	    }
	}
    }
    if {[catch {readFile [dict get $st err] auto} err]} {
	set err {}
    }
    rmtemp [dict get $st dir]
    if {[dict exists $st script]} {
	rmtemp [dict get $st script]
    }
    unset children($id)
    return [list $status $err]
}

# ::tm::childKill, childKillAll --
#
#	Cleanup: kill a child (if still there), or all of them, and forget
#	it.
#
# Results:
#	None.
#
# Side effects:
#	SIGKILL; see childWait.

proc ::tm::childKill {id} {
    variable children
    if {![info exists children($id)]} {
	return
    }
    foreach p [dict get $children($id) pid] {
	catch {exec kill -KILL $p}
    }
    catch {childWait $id 2000}
}

proc ::tm::childKillAll {} {
    variable children
    foreach id [array names children] {
	childKill $id
    }
}

# ::tm::rss --
#
#	The resident set size of a process (VmRSS).
#
# Results:
#	KiB, or -1 when /proc does not say.
#
# Side effects:
#	None.

proc ::tm::rss {pid} {
    set text [readFile /proc/$pid/status auto]
    if {[regexp -line {^VmRSS:\s+(\d+)\s+kB} $text -> kb]} {
	return $kb
    }
    return -1
}
