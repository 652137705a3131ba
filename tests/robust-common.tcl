# robust-common.tcl --
#
#	Helpers shared by the robustness tests (badinput.test, faults.test,
#	load.test, security.test):
#
#	  - robust::start/stop run a milter in this interpreter on an
#	    ephemeral loopback port, with every callback recording its
#	    arguments (robust::trace), a -logcommand recording log lines
#	    (robust::log) and a bgerror handler recording background errors
#	    (robust::bgerrors).  stop puts every option and callback back
#	    the way it was, because test files share one interpreter.
#	  - robust::raw::* is a byte-level MTA that can send anything,
#	    including garbage before option negotiation.  It uses the event
#	    loop, so the milter in the same thread keeps running while it
#	    waits.
#	  - robust::good* drive the well-behaved connection that each
#	    bad-input test opens before the bad one and checks afterwards.
#	  - robust::child* run a tclsh script in a child process with a
#	    hang guard, and collect its exit status and stderr.
#
#	Source it from a test file after tcltest is loaded.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require tcltest 2.5

namespace eval ::robust {
    namespace export pkt
    variable testDir [file dirname [file normalize [info script]]]
    variable srcDir [file dirname $testDir]

    # Where this process and its children find the package: the
    # caller's TCLLIBPATH (make test sets it, also for sanitizer builds),
    # else the source tree, which is also the build directory of an
    # in-tree build.
    if {![info exists ::env(TCLLIBPATH)]} {
	set ::env(TCLLIBPATH) [list $srcDir]
	if {$srcDir ni $::auto_path} {
	    lappend ::auto_path $srcDir
	}
    }

    variable events {
	negotiate connect helo envfrom envrcpt data header eoh body eom
	abort close unknown
    }
    variable trace {}		;# {ctx event arg ...} per callback
    variable log {}		;# {level message} per log line
    variable bgerrors {}	;# {message errorcode} per bgerror
    variable bginfo {}		;# the -errorinfo of each bgerror
    variable handlers		;# event -> lambda {ctx args} for results
    array set handlers {}
    # The documented defaults, applied by robust::start before its
    # options, whatever an earlier test file left behind.
    variable documented {
	-backlog 0 -coroutines 0 -debuglevel 0 -defaultreply SMFIS_TEMPFAIL
	-draintimeout 5 -encoding utf-8 -leadingspace 0 -logcommand {}
	-logdestination stderr -maxconnections 0 -maxdatasize 65535 -metrics {}
	-name TclMilter -signals {} -socketgroup {} -socketmode 0660
	-socketowner {} -syslogfacility mail -syslogident {} -timeout 7210
	-workerinit {} -workers 0
    }
    variable savedBgerror {}
    variable good {}		;# the well-behaved session command
    variable goodCtx {}		;# its context command
    variable tick 0
    variable tmpCount 0
    variable children		;# child id -> state dict
    array set children {}
    variable childCount 0
}

package require TclMilter
package require milter::test

# The configuration as found when this file was first sourced; robust::stop
# restores it.
if {![info exists ::robust::defaults]} {
    set ::robust::defaults [milter configure]
}

# ----------------------------------------------------------------------
# Waiting without blocking the event loop.
# ----------------------------------------------------------------------

# robust::sleep ms --
#	Run the event loop for ms milliseconds.

proc ::robust::sleep {ms} {
    set var ::robust::sleep[incr ::robust::tick]
    set $var 0
    after $ms [list set $var 1]
    vwait $var
    unset $var
}

# robust::waitFor condition ?ms? --
#	Run the event loop until the expression (evaluated at global level)
#	is true or ms milliseconds have passed.  Returns 1 if it became
#	true, else 0.

proc ::robust::waitFor {condition {ms 5000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while {![uplevel #0 [list expr $condition]]} {
	if {[clock milliseconds] >= $deadline} {
	    return 0
	}
	sleep 10
    }
    return 1
}

# robust::tempdir --
#	A new empty directory under TMPDIR (or /tmp), removed by rmtemp.

proc ::robust::tempdir {} {
    variable tmpCount
    set base [expr {[info exists ::env(TMPDIR)] ? $::env(TMPDIR) : "/tmp"}]
    set dir [file join $base \
	    robust-[pid]-[clock microseconds]-[incr tmpCount]]
    file mkdir $dir
    return $dir
}

proc ::robust::rmtemp {dir} {
    if {$dir ne ""} {
	catch {file delete -force -- $dir}
    }
}

# ----------------------------------------------------------------------
# The milter under test, in this interpreter.
# ----------------------------------------------------------------------

# robust::Callback event ctx args --
#	The callback registered for every event: records the call and
#	returns what the handler for the event returns (SMFIS_CONTINUE when
#	there is none).

proc ::robust::Callback {event ctx args} {
    variable trace
    variable handlers
    lappend trace [list $ctx $event {*}$args]
    if {[info exists handlers($event)]} {
	return [apply $handlers($event) $ctx {*}$args]
    }
    return SMFIS_CONTINUE
}

proc ::robust::Log {level message} {
    variable log
    lappend log [list $level $message]
}

proc ::robust::BgError {message options} {
    variable bgerrors
    variable bginfo
    lappend bgerrors [list $message [dict get $options -errorcode]]
    lappend bginfo [dict get $options -errorinfo]
}

# robust::start ?-option value ...? --
#	Start the milter on inet:0@127.0.0.1 with -debuglevel 1, the
#	recording callbacks for every event, the log recorder, and the
#	given options on top.  Returns the address to connect to.

proc ::robust::start {args} {
    variable events
    variable trace {}
    variable log {}
    variable bgerrors {}
    variable bginfo {}
    variable savedBgerror
    variable documented
    set savedBgerror [interp bgerror {}]
    interp bgerror {} ::robust::BgError
    milter configure {*}$documented -connection inet:0@127.0.0.1 \
	    -debuglevel 1 -logcommand ::robust::Log {*}$args
    foreach event $events {
	milter register $event [list ::robust::Callback $event]
    }
    milter start
    return [milter address]
}

# robust::stop --
#	Stop the milter, wait until it is idle, and restore every option,
#	callback, handler and the bgerror handler.  Returns nothing; never
#	fails.

proc ::robust::stop {} {
    variable events
    variable defaults
    variable handlers
    variable savedBgerror
    if {[milter status] ne "idle"} {
	catch {milter stop}
	waitFor {[milter status] eq "idle"} 10000
    }
    foreach event $events {
	catch {milter register $event {}}
    }
    array unset handlers
    # Options that cannot be read back as set (none today) are skipped.
    dict for {option value} $defaults {
	catch {milter configure $option $value}
    }
    if {$savedBgerror ne ""} {
	interp bgerror {} $savedBgerror
	set savedBgerror {}
    }
    return
}

# robust::handle event lambda --
#	Set the result lambda ({ctx args} body) for an event.

proc ::robust::handle {event lambda} {
    variable handlers
    set handlers($event) $lambda
}

# robust::ctxs --
#	The contexts seen in the trace, in order of first appearance.

proc ::robust::ctxs {} {
    variable trace
    set result {}
    foreach entry $trace {
	set ctx [lindex $entry 0]
	if {$ctx ni $result} {
	    lappend result $ctx
	}
    }
    return $result
}

# robust::events ctx --
#	The event names recorded for a context, in order.

proc ::robust::events {ctx} {
    variable trace
    set result {}
    foreach entry $trace {
	if {[lindex $entry 0] eq $ctx} {
	    lappend result [lindex $entry 1]
	}
    }
    return $result
}

# robust::calls ctx event --
#	The argument lists of every call of an event for a context.

proc ::robust::calls {ctx event} {
    variable trace
    set result {}
    foreach entry $trace {
	if {[lindex $entry 0] eq $ctx && [lindex $entry 1] eq $event} {
	    lappend result [lrange $entry 2 end]
	}
    }
    return $result
}

proc ::robust::count {ctx event} {
    return [llength [calls $ctx $event]]
}

# robust::logFor conn --
#	The log lines {level message} that name connection number conn.

proc ::robust::logFor {conn} {
    variable log
    set result {}
    foreach entry $log {
	if {[string match "connection $conn\[: \]*" [lindex $entry 1]]} {
	    lappend result $entry
	}
    }
    return $result
}

# ----------------------------------------------------------------------
# The well-behaved connection of the bad-input tests.
# ----------------------------------------------------------------------

# robust::goodOpen addr --
#	Open a session, send CONNECT and HELO, remember its context.
#	Returns the session command.  Always connection number 1 when it is
#	the first connection after robust::start.

proc ::robust::goodOpen {addr} {
    variable good
    variable goodCtx
    set good [milter::test::open $addr]
    $good connect good.example.org inet 2525 192.0.2.1
    $good helo good.example.org
    set goodCtx [lindex [ctxs] 0]
    return $good
}

# robust::goodMessage --
#	Run a whole message on the good connection.  Returns a list: the
#	action, the stage, whether its context is still there, and the
#	events its context saw after the ones it had before.

proc ::robust::goodMessage {} {
    variable good
    variable goodCtx
    set before [llength [events $goodCtx]]
    if {[catch {
	$good message -text "Subject: still fine\n\nbody\n"
    } result]} {
	return [list error $result]
    }
    return [list [dict get $result action] [dict get $result stage] \
	    [llength [info commands $goodCtx]] \
	    [lrange [events $goodCtx] $before end]]
}

proc ::robust::goodClose {} {
    variable good
    variable goodCtx
    if {$good ne ""} {
	catch {$good quit}
	set good {}
    }
    set goodCtx {}
}

# robust::setup ?-option value ...? --
#	robust::start, then the good connection.  Returns the address.

proc ::robust::setup {args} {
    set addr [start {*}$args]
    goodOpen $addr
    return $addr
}

# robust::cleanup --
#	Close the good connection and every raw channel, stop the milter.

proc ::robust::cleanup {} {
    goodClose
    raw::closeAll
    stop
}

# robust::outcome chan ?ms? --
#	After a bad input on the raw channel chan (connection number 2):
#	wait for the milter to close it, wait for its close callback, then
#	complete a message on the good connection.  Returns a dict:
#	  replies	the packets the client read, then eof (or timeout)
#	  log		the log lines naming connection 2
#	  ends		the abort and close callbacks of the bad connection,
#			in the order they ran
#	  ctxs		the bad connection's context commands still existing
#	  good		robust::goodMessage
#	  bgerrors	background errors

proc ::robust::outcome {chan {ms 5000}} {
    variable bgerrors
    set replies [raw::drain $chan $ms]
    waitFor {[::robust::badClosed]} 2000
    # Give a duplicate callback the chance to show up.
    sleep 100
    set ends {}
    set alive {}
    foreach ctx [badCtxs] {
	foreach event [events $ctx] {
	    if {$event in {abort close}} {
		lappend ends $event
	    }
	}
	if {[llength [info commands $ctx]]} {
	    lappend alive $ctx
	}
    }
    return [dict create replies $replies log [logFor 2] ends $ends \
	    ctxs $alive good [goodMessage] bgerrors $bgerrors]
}

# robust::badClosed --
#	Whether a context other than the good one has had its close
#	callback.

proc ::robust::badClosed {} {
    foreach ctx [badCtxs] {
	if {[count $ctx close]} {
	    return 1
	}
    }
    return 0
}

# robust::badCtxs --
#	Contexts in the trace other than the good connection's.

proc ::robust::badCtxs {} {
    variable goodCtx
    set result {}
    foreach ctx [ctxs] {
	if {$ctx ne $goodCtx} {
	    lappend result $ctx
	}
    }
    return $result
}

# ----------------------------------------------------------------------
# The raw MTA: bytes in, packets out.
# ----------------------------------------------------------------------

namespace eval ::robust::raw {
    variable buf		;# chan -> bytes not yet parsed
    variable eof		;# chan -> 1 once the milter closed
    variable wake 0
    array set buf {}
    array set eof {}
}

# robust::raw::open addr --
#	Connect to inet:PORT@HOST or unix:PATH (through milter::test's
#	relay for unix sockets).  Returns the channel.

proc ::robust::raw::open {addr} {
    variable buf
    variable eof
    if {[regexp {^inet:(\d+)@(.*)$} $addr -> port host]} {
	set chan [socket $host $port]
    } elseif {[regexp {^(?:unix|local):(.*)$} $addr -> path]} {
	set chan [::open |[list perl -e $::milter::test::relay -- $path] r+]
	chan configure $chan -translation binary -buffering line
	if {[gets $chan status] < 0 || $status ne "ok"} {
	    catch {close $chan}
	    error "cannot connect to $addr: $status"
	}
    } else {
	error "bad address \"$addr\""
    }
    chan configure $chan -blocking 0 -translation binary -buffering none
    set buf($chan) {}
    set eof($chan) 0
    chan event $chan readable [list ::robust::raw::Readable $chan]
    return $chan
}

proc ::robust::raw::Readable {chan} {
    variable buf
    variable eof
    variable wake
    if {[catch {read $chan} data]} {
	set eof($chan) 1
    } else {
	append buf($chan) $data
	if {[chan eof $chan]} {
	    set eof($chan) 1
	}
    }
    if {$eof($chan)} {
	chan event $chan readable {}
    }
    set wake 1
}

# robust::pkt cmd ?data? --
#	One framed packet: length (counting the command byte), command,
#	data.

proc ::robust::pkt {cmd {data {}}} {
    return [binary format I [expr {[string length $data] + 1}]]$cmd$data
}

# robust::raw::send chan cmd ?data? --
#	Send one packet with a correct length.

proc ::robust::raw::send {chan cmd {data {}}} {
    sendraw $chan [::robust::pkt $cmd $data]
}

proc ::robust::raw::sendraw {chan bytes} {
    puts -nonewline $chan $bytes
    flush $chan
}

# robust::raw::packet chan ?ms? --
#	The next packet as {cmd data}, or {eof} once the milter has closed
#	and nothing is left, or {timeout}.

proc ::robust::raw::packet {chan {ms 5000}} {
    variable buf
    variable eof
    variable wake
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
	if {[binary scan $buf($chan) Iu len] == 1
		&& [string length $buf($chan)] >= $len + 4} {
	    set cmd [string index $buf($chan) 4]
	    set data [string range $buf($chan) 5 [expr {$len + 3}]]
	    set buf($chan) [string range $buf($chan) [expr {$len + 4}] end]
	    return [list $cmd $data]
	}
	if {$eof($chan)} {
	    if {$buf($chan) ne ""} {
		return [list partial $buf($chan)]
	    }
	    return eof
	}
	set left [expr {$deadline - [clock milliseconds]}]
	if {$left <= 0} {
	    return timeout
	}
	set id [after $left [list set ::robust::raw::wake 0]]
	vwait ::robust::raw::wake
	after cancel $id
    }
}

# robust::raw::reply chan ?ms? --
#	The command character of the next packet (or eof/timeout).

proc ::robust::raw::reply {chan {ms 5000}} {
    return [lindex [packet $chan $ms] 0]
}

# robust::raw::drain chan ?ms? --
#	The command characters of every packet until the milter closes,
#	then "eof"; "timeout" when it has not closed after ms.

proc ::robust::raw::drain {chan {ms 5000}} {
    set result {}
    while 1 {
	set cmd [reply $chan $ms]
	lappend result $cmd
	if {$cmd in {eof timeout partial}} {
	    return $result
	}
    }
}

# robust::raw::optneg chan ?version? ?actions? ?protocol? --
#	Negotiate; returns the reply's command character.

proc ::robust::raw::optneg {chan {version 6} {actions 0x1ff}
	{protocol 0x1fffff}} {
    send $chan O [binary format III $version $actions $protocol]
    return [reply $chan]
}

# robust::raw::session addr ?upto? --
#	Open, negotiate with every protocol bit offered (so header and end
#	of header replies are deferred) and send the commands of a session
#	up to and including the stage upto (optneg, connect, helo, envfrom,
#	envrcpt, data, header, eoh, body), checking each reply.  Returns
#	the channel.

proc ::robust::raw::session {addr {upto helo}} {
    set chan [open $addr]
    set steps {
	connect {C "bad.example.org\0004\x00\x19192.0.2.2\0" c}
	helo {H "bad.example.org\0" c}
	envfrom {M "<from@example.org>\0" c}
	envrcpt {R "<to@example.org>\0" c}
	data {T "" c}
	header {L "Subject\0hello\0" {}}
	eoh {N "" {}}
	body {B "line\r\n" c}
    }
    if {[set got [optneg $chan]] ne "O"} {
	error "option negotiation answered with \"$got\""
    }
    if {$upto eq "optneg"} {
	return $chan
    }
    foreach {stage step} $steps {
	lassign $step cmd data want
	send $chan $cmd $data
	if {$want ne ""} {
	    set got [reply $chan]
	    if {$got ne $want} {
		error "$stage answered with \"$got\", expected \"$want\""
	    }
	}
	if {$stage eq $upto} {
	    break
	}
    }
    return $chan
}

# robust::raw::message chan ?from? --
#	Send a whole message (MAIL to EOM) on a negotiated raw connection
#	that has said HELO.  Returns the reply characters of the commands
#	that have replies (header and end of header have none, see
#	robust::raw::session).

proc ::robust::raw::message {chan} {
    set replies {}
    foreach {cmd data} {
	M "<from@example.org>\0" R "<to@example.org>\0" T ""
	L "Subject\0hello\0" N "" B "line\r\n" E ""
    } {
	send $chan $cmd $data
	if {$cmd ni {L N}} {
	    lappend replies [reply $chan]
	}
    }
    return $replies
}

# robust::raw::halfclose chan --
#	Send EOF (shut down the writing side) but keep reading.

proc ::robust::raw::halfclose {chan} {
    ::close $chan write
}

proc ::robust::raw::close {chan} {
    variable buf
    variable eof
    catch {chan event $chan readable {}}
    catch {::close $chan}
    unset -nocomplain buf($chan) eof($chan)
}

proc ::robust::raw::closeAll {} {
    variable buf
    foreach chan [array names buf] {
	close $chan
    }
}

# ----------------------------------------------------------------------
# Child processes.
# ----------------------------------------------------------------------

# robust::spawn command --
#	Start a process (command is a list: program and arguments).  Its
#	stdout is read line by line (robust::childLine), its stdin is open
#	for robust::childSay, its stderr goes to a file read by
#	robust::childWait.  Returns an id.

proc ::robust::spawn {command} {
    variable children
    variable childCount
    set dir [tempdir]
    set err [file join $dir stderr]
    set chan [::open |[list {*}$command 2> $err] r+]
    chan configure $chan -blocking 0 -buffering line
    set id child[incr childCount]
    set children($id) [dict create chan $chan pid [pid $chan] dir $dir \
	    err $err lines {} eof 0]
    chan event $chan readable [list ::robust::ChildReadable $id]
    return $id
}

# robust::child script ?arg ...? --
#	robust::spawn a new tclsh running script with the arguments.

proc ::robust::child {script args} {
    set file [file join [tempdir] child.tcl]
    set f [::open $file w]
    puts $f $script
    ::close $f
    set id [spawn [list [info nameofexecutable] $file {*}$args]]
    dict set ::robust::children($id) script [file dirname $file]
    return $id
}

# robust::childShell prefix command --
#	robust::spawn command (a list) through "sh -c", after the shell
#	commands in prefix (for example "ulimit -n 8192;").

proc ::robust::childShell {prefix command} {
    return [spawn [list sh -c "$prefix exec \"\$@\"" sh {*}$command]]
}

proc ::robust::ChildReadable {id} {
    variable children
    set chan [dict get $children($id) chan]
    while {[gets $chan line] >= 0} {
	dict lappend children($id) lines $line
    }
    if {[chan eof $chan]} {
	dict set children($id) eof 1
	chan event $chan readable {}
    }
    set ::robust::tick [incr ::robust::tick]
}

# robust::childLine id pattern ?ms? --
#	Wait for a stdout line matching the glob pattern and return it
#	(removing it and the lines before it), or "" on timeout or EOF.

proc ::robust::childLine {id pattern {ms 10000}} {
    variable children
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
	set lines [dict get $children($id) lines]
	set i [lsearch -glob $lines $pattern]
	if {$i >= 0} {
	    dict set children($id) lines [lrange $lines $i+1 end]
	    return [lindex $lines $i]
	}
	if {[dict get $children($id) eof]
		|| [clock milliseconds] >= $deadline} {
	    return {}
	}
	sleep 10
    }
}

# robust::childFind id pattern ?ms? --
#	Like robust::childLine, but removes only the matching line, so that
#	lines may be looked for in any order.

proc ::robust::childFind {id pattern {ms 10000}} {
    variable children
    set deadline [expr {[clock milliseconds] + $ms}]
    while 1 {
	set lines [dict get $children($id) lines]
	set i [lsearch -glob $lines $pattern]
	if {$i >= 0} {
	    dict set children($id) lines [lreplace $lines $i $i]
	    return [lindex $lines $i]
	}
	if {[dict get $children($id) eof]
		|| [clock milliseconds] >= $deadline} {
	    return {}
	}
	sleep 10
    }
}

# robust::childSay id line --
#	Write a line to the child's stdin.  Returns 1, or 0 when the child
#	is gone (its exit status then tells why).

proc ::robust::childSay {id line} {
    variable children
    set chan [dict get $children($id) chan]
    return [expr {![catch {
	puts $chan $line
	flush $chan
    }]}]
}

# robust::childPid id --

proc ::robust::childPid {id} {
    variable children
    return [lindex [dict get $children($id) pid] end]
}

# robust::childWait id ?ms? --
#	Wait for the child to exit.  Returns {status stderr}: status is the
#	exit code, "signal NAME" when killed by a signal, or "timeout" (the
#	child is then killed with SIGKILL).  The child is forgotten.

proc ::robust::childWait {id {ms 20000}} {
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

# robust::childKill id --
#	Cleanup: kill the child (if still there) and forget it.

proc ::robust::childKill {id} {
    variable children
    if {![info exists children($id)]} {
	return
    }
    foreach p [dict get $children($id) pid] {
	catch {exec kill -KILL $p}
    }
    catch {childWait $id 2000}
}

proc ::robust::childKillAll {} {
    variable children
    foreach id [array names children] {
	childKill $id
    }
}

# robust::rss pid --
#	Resident set size of a process in KiB (VmRSS).

proc ::robust::rss {pid} {
    set f [::open /proc/$pid/status r]
    set text [read $f]
    ::close $f
    if {[regexp -line {^VmRSS:\s+(\d+)\s+kB} $text -> kb]} {
	return $kb
    }
    return -1
}
