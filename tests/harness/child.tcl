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


# tm::spawn command --
#	Start a process (command is a list: program and arguments).  Its
#	stdout is read line by line (tm::childLine), its stdin is open
#	for tm::childSay, its stderr goes to a file read by
#	tm::childWait.  Returns an id.

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

# tm::child script ?arg ...? --
#	tm::spawn a new tclsh running script with the arguments.

proc ::tm::child {script args} {
    set file [file join [tempdir] child.tcl]
    set f [::open $file w]
    puts $f $script
    ::close $f
    set id [spawn [list [info nameofexecutable] $file {*}$args]]
    dict set ::tm::children($id) script [file dirname $file]
    return $id
}

# tm::childShell prefix command --
#	tm::spawn command (a list) through "sh -c", after the shell
#	commands in prefix (for example "ulimit -n 8192;").

proc ::tm::childShell {prefix command} {
    return [spawn [list sh -c "$prefix exec \"\$@\"" sh {*}$command]]
}

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

# tm::childSay id line --
#	Write a line to the child's stdin.  Returns 1, or 0 when the child
#	is gone (its exit status then tells why).

proc ::tm::childSay {id line} {
    variable children
    set chan [dict get $children($id) chan]
    return [expr {![catch {
	puts $chan $line
	flush $chan
    }]}]
}

# tm::childPid id --

proc ::tm::childPid {id} {
    variable children
    return [lindex [dict get $children($id) pid] end]
}

# tm::childWait id ?ms? --
#	Wait for the child to exit.  Returns {status stderr}: status is the
#	exit code, "signal NAME" when killed by a signal, or "timeout" (the
#	child is then killed with SIGKILL).  The child is forgotten.

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
    set err {}
    catch {
	set f [::open [dict get $st err] r]
	set err [read $f]
	::close $f
    }
    rmtemp [dict get $st dir]
    if {[dict exists $st script]} {
	rmtemp [dict get $st script]
    }
    unset children($id)
    return [list $status $err]
}

# tm::childKill id --
#	Cleanup: kill the child (if still there) and forget it.

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

# tm::rss pid --
#	Resident set size of a process in KiB (VmRSS).

proc ::tm::rss {pid} {
    set f [::open /proc/$pid/status r]
    set text [read $f]
    ::close $f
    if {[regexp -line {^VmRSS:\s+(\d+)\s+kB} $text -> kb]} {
	return $kb
    }
    return -1
}
