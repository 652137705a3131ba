# common.tcl --
#
#	Helpers shared by the core API tests (milter.test, callbacks.test,
#	context.test).  The milter under test runs in the test interpreter
#	itself: [milter start] serves it in the background, and the MTA side
#	is the milter::test client, whose non-blocking reads run the event
#	loop that dispatches the callbacks.
#
#	Every test starts the milter in -setup (startMilter) and ends it in
#	-cleanup (stopMilter), which also closes the clients, removes every
#	callback and restores the default configuration, so tests do not
#	depend on each other.  Unix sockets live in a private temporary
#	directory that cleanupCommon removes.
#
#	Sourcing this file again (all.tcl runs the test files in one
#	interpreter) makes a new temporary directory and keeps the rest.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require tcltest 2.5
package require TclMilter
package require milter::test

namespace eval ::tmtest {
    namespace export startMilter stopMilter client closeClients \
	    socketSpec socketPath tempDir waitUntil record \
	    recordAll recorded events setReply setHandler \
	    driveTo captureBgerrors releaseBgerrors bgerrors captureLog \
	    releaseLog logLines stageEvents bytes0to255 hexdump staleSocket

    # Every callback event, in the order of [milter register]'s table.
    variable allEvents {negotiate connect helo envfrom envrcpt data header
	    eoh body eom abort close unknown}

    # The documented default configuration, restored after every test.
    # (milter.test checks, in a fresh interpreter, that it is the
    # package's.)
    variable defaults {-backlog 0 -capture {} -captureall 1
	    -capturebody 65536 -capturemask 0 -capturesize 1048576
	    -connection unix:/var/run/tclmilter.sock
	    -coroutines 0 -debuglevel 0 -defaultreply SMFIS_TEMPFAIL -draintimeout 5.0
	    -encoding utf-8 -leadingspace 0 -logcommand {}
	    -logdestination stderr
	    -maxconnections 0 -maxdatasize 65535 -metrics {} -name TclMilter
	    -signals {} -socketgroup {} -socketmode 0660 -socketowner {}
	    -syslogfacility mail -syslogident {}
	    -timeout 7210 -workerinit {} -workers 0}

    variable dir {}		;# temporary directory of this test file
    variable seq 0		;# socket file counter
    variable clients {}		;# sessions opened by [client]
    variable events {}		;# what [record] callbacks saw
    variable replies {}		;# event -> result for [record]
    variable bgerrors {}	;# messages captured by captureBgerrors
    variable savedBgerror {}	;# the handler captureBgerrors replaced
    variable logLines {}	;# lines captured by captureLog
    variable wake 0		;# vwait variable of waitUntil
}

# ::tmtest::tempDir --
#
#	The temporary directory of the current test file, created on first
#	use with a unique name next to a [file tempfile] file.
#
# Results:
#	An absolute directory name.
#
# Side effects:
#	May create the directory.

proc ::tmtest::tempDir {} {
    variable dir
    if {$dir eq "" || ![file isdirectory $dir]} {
	close [file tempfile path tmtest]
	file delete $path
	file mkdir $path
	set dir $path
    }
    return $dir
}

# ::tmtest::socketPath, socketSpec --
#
#	A fresh unix socket path in the temporary directory, and the same
#	as a connection spec.
#
# Results:
#	The path or the spec.

proc ::tmtest::socketPath {} {
    variable seq
    return [file join [tempDir] m[incr seq].sock]
}

proc ::tmtest::socketSpec {} {
    return unix:[socketPath]
}

# ::tmtest::waitUntil --
#
#	Runs the event loop until a condition (an expression evaluated in
#	the caller) is true, or at most 'ms' milliseconds.  Each round waits
#	with vwait and a 10 ms timer, cancelled afterwards.
#
# Results:
#	1 if the condition became true, 0 on time-out.
#
# Side effects:
#	Services events.

proc ::tmtest::waitUntil {condition {ms 5000}} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while {![uplevel 1 [list expr $condition]]} {
	if {[clock milliseconds] >= $deadline} {
	    return 0
	}
	set timer [after 10 [list set [namespace current]::wake 1]]
	vwait [namespace current]::wake
	after cancel $timer
    }
    return 1
}

# ::tmtest::startMilter --
#
#	Stops and resets the milter (see stopMilter), configures it (a
#	fresh unix socket unless -connection is given; the log goes to
#	[logLines] unless -logcommand is given) and starts it in the
#	background.
#
# Arguments:
#	args	milter configure options
#
# Results:
#	The listening address, as [milter address] gives it.

proc ::tmtest::startMilter {args} {
    variable logLines
    # Start from a clean state, whatever an earlier test left.
    stopMilter
    set logLines {}
    if {![dict exists $args -connection]} {
	dict set args -connection [socketSpec]
    }
    if {![dict exists $args -logcommand]} {
	dict set args -logcommand [list [namespace current]::LogRecord]
    }
    milter configure {*}$args
    milter start
    return [milter address]
}

# ::tmtest::stopMilter --
#
#	The cleanup of every test: closes the clients, stops the milter,
#	waits until it is idle, removes the callbacks and restores the
#	default configuration.
#
# Results:
#	None.
#
# Side effects:
#	As above; errors are not raised, so cleanup always completes.

proc ::tmtest::stopMilter {} {
    variable allEvents
    variable defaults
    variable events
    variable replies
    closeClients
    if {[milter status] ne "idle"} {
	milter stop
	waitUntil {[milter status] eq "idle"} 15000
    }
    foreach event $allEvents {
	milter register $event {}
    }
    catch {milter configure {*}$defaults}
    # Forget what the callbacks saw while the connections closed.
    set events {}
    set replies {}
    return
}

# ::tmtest::client --
#
#	Opens a milter::test session to the running milter.
#
# Arguments:
#	args	milter::test::open options (-actions, -protocol, ...)
#
# Results:
#	The session command.

proc ::tmtest::client {args} {
    variable clients
    set session [milter::test::open [milter address] {*}$args]
    lappend clients $session
    return $session
}

# ::tmtest::closeClients --
#
#	Closes every session opened by [client] that is still open.
#
# Results:
#	None.

proc ::tmtest::closeClients {} {
    variable clients
    foreach session $clients {
	if {[info commands $session] ne ""} {
	    catch {$session close}
	}
    }
    set clients {}
    return
}

# ::tmtest::record --
#
#	A callback that records its event and arguments (without the
#	context, which tests check separately) and returns what setReply or
#	setHandler arranged (SMFIS_CONTINUE by default).
#
# Arguments:
#	event	the event name (the registered prefix holds it)
#	ctx	the context command
#	args	the event's arguments
#
# Results:
#	The arranged result.

proc ::tmtest::record {event ctx args} {
    variable events
    variable replies
    lappend events [list $event {*}$args]
    if {![dict exists $replies $event]} {
	return SMFIS_CONTINUE
    }
    lassign [dict get $replies $event] kind value
    if {$kind eq "handler"} {
	return [uplevel #0 [list {*}$value $ctx {*}$args]]
    }
    return $value
}

# ::tmtest::recordAll --
#
#	Registers [record] for the given events (all by default).
#
# Results:
#	None.

proc ::tmtest::recordAll {{which {}}} {
    variable allEvents
    if {![llength $which]} {
	set which $allEvents
    }
    foreach event $which {
	milter register $event [list [namespace current]::record $event]
    }
    return
}

# ::tmtest::setReply, setHandler --
#
#	Make [record] return 'reply' for 'event', or call the command
#	prefix 'handler' with the context and the event's arguments and
#	return its result (errors and other codes propagate).
#
# Results:
#	None.

proc ::tmtest::setReply {event reply} {
    variable replies
    dict set replies $event [list value $reply]
    return
}

proc ::tmtest::setHandler {event handler} {
    variable replies
    dict set replies $event [list handler $handler]
    return
}

# ::tmtest::events, recorded --
#
#	What [record] saw; the events seen for one event name.
#
# Results:
#	A list of {event arg...} lists, or nothing.

proc ::tmtest::events {} {
    variable events
    return $events
}

proc ::tmtest::recorded {event} {
    variable events
    set result {}
    foreach item $events {
	if {[lindex $item 0] eq $event} {
	    lappend result $item
	}
    }
    return $result
}

# ::tmtest::stageEvents --
#
#	The names of the events seen so far, in order.
#
# Results:
#	A list of event names.

proc ::tmtest::stageEvents {} {
    variable events
    set result {}
    foreach item $events {
	lappend result [lindex $item 0]
    }
    return $result
}

# ::tmtest::driveTo --
#
#	Sends an MTA's commands in order (connect, helo, envfrom, envrcpt,
#	data, one header, eoh, one body chunk, eom) up to and including
#	'stage', or connect, helo and then unknown for stage "unknown".
#
# Arguments:
#	session	a milter::test session
#	stage	the last command to send
#
# Results:
#	The client's result dict for that last command.

proc ::tmtest::driveTo {session stage} {
    set steps {
	{connect client.example inet 4321 192.0.2.1}
	{helo helo.example}
	{envfrom <from@example.org> SIZE=10}
	{envrcpt <to@example.org>}
	{data}
	{header Subject Test}
	{eoh}
	{body "Hello\r\n"}
	{eom}
    }
    if {$stage eq "unknown"} {
	set steps [list {*}[lrange $steps 0 1] {unknown "XFOO bar"}]
    }
    foreach step $steps {
	set result [$session {*}$step]
	if {[lindex $step 0] eq $stage} {
	    return $result
	}
    }
    return -code error "unknown stage \"$stage\""
}

# ::tmtest::captureBgerrors, releaseBgerrors, bgerrors --
#
#	Replace the background error handler with a recorder (as the Tcl
#	core's basic-26.1 does), restore it, and read what was recorded:
#	a list of {message errorcode errorinfo} lists.
#
# Results:
#	None, or the recorded list.

proc ::tmtest::captureBgerrors {} {
    variable savedBgerror [interp bgerror {}]
    variable bgerrors {}
    interp bgerror {} [namespace current]::BgRecord
    return
}

proc ::tmtest::BgRecord {message options} {
    variable bgerrors
    set code {}
    set info {}
    if {[dict exists $options -errorcode]} {
	set code [dict get $options -errorcode]
    }
    if {[dict exists $options -errorinfo]} {
	set info [dict get $options -errorinfo]
    }
    lappend bgerrors [list $message $code $info]
    return
}

proc ::tmtest::releaseBgerrors {} {
    variable savedBgerror
    interp bgerror {} $savedBgerror
    return
}

proc ::tmtest::bgerrors {} {
    variable bgerrors
    return $bgerrors
}

# ::tmtest::captureLog, releaseLog, logLines --
#
#	Route the milter's log to a recorder (-logcommand), restore the
#	default, and read the {level message} pairs recorded.
#
# Results:
#	None, or the list.

proc ::tmtest::captureLog {} {
    variable logLines {}
    milter configure -logcommand [list [namespace current]::LogRecord]
    return
}

proc ::tmtest::LogRecord {level message} {
    variable logLines
    lappend logLines [list $level $message]
    return
}

proc ::tmtest::releaseLog {} {
    milter configure -logcommand {}
    return
}

proc ::tmtest::logLines {} {
    variable logLines
    return $logLines
}

# ::tmtest::bytes0to255 --
#
#	A byte string holding every byte value once, repeated 'n' times.
#
# Results:
#	A byte array.

proc ::tmtest::bytes0to255 {{n 1}} {
    set bytes {}
    for {set i 0} {$i < 256} {incr i} {
	append bytes [binary format c $i]
    }
    return [string repeat $bytes $n]
}

# ::tmtest::hexdump --
#
#	A byte string as hexadecimal, so that failures print readably.
#
# Results:
#	A string.

proc ::tmtest::hexdump {bytes} {
    binary scan $bytes H* hex
    return $hex
}

# ::tmtest::staleSocket --
#
#	Leaves a unix socket file at 'path' that nobody listens on (perl
#	binds it and exits).
#
# Results:
#	None.

proc ::tmtest::staleSocket {path} {
    exec perl -MSocket -e {
	socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
	bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!";
    } $path
    return
}

# ::tmtest::cleanupCommon --
#
#	Called at the end of each test file: stops anything left running
#	and removes the temporary directory.
#
# Results:
#	None.

proc ::tmtest::cleanupCommon {} {
    variable dir
    stopMilter
    if {$dir ne ""} {
	file delete -force $dir
	set dir {}
    }
    return
}

namespace import -force ::tmtest::*

# Constraints.

# staleSocket needs perl (a unix socket file nobody listens on).
tcltest::testConstraint perl [expr {[auto_execok perl] ne ""}]

# IPv6 loopback works when a listener on ::1 accepts a connection.
proc ::tmtest::ProbeIPv6 {} {
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
tcltest::testConstraint ipv6 [::tmtest::ProbeIPv6]

# The Thread package, for milter stop from another thread.
tcltest::testConstraint thread [expr {![catch {package require Thread}]}]
