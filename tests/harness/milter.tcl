# milter.tcl --
#
#	The milter under test in this interpreter (see ../harness.tcl).
#	[milter start] serves it in the background; the MTA side is a
#	milter::test client (client, driveTo), or the byte-level ::tm::raw,
#	whose waits run the event loop that dispatches the callbacks.
#
#	  - startMilter configures (a fresh unix socket unless -connection
#	    is given, the log recorded unless -logcommand is given) and
#	    starts; start does the same on an ephemeral loopback port with
#	    -debuglevel 1, every callback recording, and background errors
#	    recorded.  setup is start plus the well-behaved connection of
#	    the bad-input tests (goodOpen); outcome reports what became of
#	    a bad connection.
#	  - record is the recording callback: it keeps {ctx event arg...}
#	    and answers what setReply, setHandler or handle arranged
#	    (SMFIS_CONTINUE by default).  events, recorded, stageEvents,
#	    ctxs, ctxEvents, calls and count read the record.
#	  - stopMilter, the cleanup of every test, closes every connection,
#	    then stop stops the milter, waits until it is idle and puts back
#	    every callback, option and the background error handler, since
#	    the test files share one interpreter.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require TclMilter
package require milter::test

namespace eval ::tm {
    namespace export startMilter stopMilter client closeClients \
	    socketSpec socketPath record recordAll recorded events \
	    setReply setHandler driveTo captureBgerrors releaseBgerrors \
	    bgerrors captureLog releaseLog logLines stageEvents \
	    bytes0to255 hexdump staleSocket

    # Every callback event, in the order of [milter register]'s table.
    variable allEvents {negotiate connect helo envfrom envrcpt data header
	    eoh body eom abort close unknown}

    # The documented default configuration, restored after every test.
    # (milter.test checks, in a fresh interpreter, that it is the
    # package's.)
    variable defaults {-backlog 0 -capture {} -captureall 1
	    -capturebody 65536 -capturemask 0 -capturesize 1048576
	    -connection unix:/var/run/tclmilter.sock
	    -coroutines 0 -debuglevel 0 -defaultreply SMFIS_TEMPFAIL
	    -draintimeout 5.0 -encoding utf-8 -leadingspace 0
	    -logcommand {} -logdestination stderr -maxconnections 0
	    -maxdatasize 65535 -metrics {} -name TclMilter -signals {}
	    -socketgroup {} -socketmode 0660 -socketowner {}
	    -syslogfacility mail -syslogident {} -timeout 7210
	    -workerinit {} -workers 0}

    variable socketSeq 0	;# socket file counter
    variable clients {}		;# sessions opened by client
    variable trace {}		;# {ctx event arg...} per recorded callback
    variable replies {}		;# event -> {value R} | {handler P} | {lambda L}
    variable logLines {}	;# {level message} per log line
    variable bgerrors {}	;# {message errorcode} per background error
    variable bginfo {}		;# the -errorinfo of each
    variable savedBgerror {}	;# the handler captureBgerrors replaced
    variable capturing 0	;# whether captureBgerrors is in force
    variable good {}		;# the well-behaved session command
    variable goodCtx {}		;# its context command
}

# ::tm::socketPath, socketSpec --
#
#	A fresh unix socket path in the scratch directory, and the same as
#	a connection spec.
#
# Results:
#	The path or the spec.
#
# Side effects:
#	None.

proc ::tm::socketPath {} {
    variable socketSeq
    return [file join [scratchDir] m[incr socketSeq].sock]
}

proc ::tm::socketSpec {} {
    return unix:[socketPath]
}

# ::tm::startMilter --
#
#	Stops and resets the milter (stopMilter), configures it (a fresh
#	unix socket unless -connection is given; the log goes to logLines
#	unless -logcommand is given) and starts it in the background.
#
# Arguments:
#	args	milter configure options
#
# Results:
#	The listening address, as [milter address] gives it.
#
# Side effects:
#	As above.

proc ::tm::startMilter {args} {
    stopMilter
    return [Launch {*}$args]
}

# ::tm::Launch --
#
#	The second half of startMilter and start: configures with the
#	defaults described there and starts.
#
# Results:
#	The listening address.
#
# Side effects:
#	Clears logLines, configures and starts the milter.

proc ::tm::Launch {args} {
    variable logLines
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

# ::tm::start --
#
#	startMilter on inet:0@127.0.0.1 with -debuglevel 1, record
#	registered for every event and background errors captured; the
#	given options go on top.
#
# Results:
#	The address to connect to.
#
# Side effects:
#	As above.

proc ::tm::start {args} {
    stopMilter
    captureBgerrors
    recordAll
    return [Launch -connection inet:0@127.0.0.1 -debuglevel 1 {*}$args]
}

# ::tm::stop --
#
#	Stops the milter, waits until it is idle, removes every callback
#	and arrangement, restores the default of every option and the
#	background error handler.  What the callbacks recorded stays.
#
# Results:
#	None.
#
# Side effects:
#	As above; errors are not raised, so cleanup always completes.

proc ::tm::stop {} {
    variable allEvents
    variable defaults
    variable replies
    if {[milter status] ne "idle"} {
	catch {milter stop}
	waitUntil {[milter status] eq "idle"} 15000
    }
    foreach event $allEvents {
	catch {milter register $event {}}
    }
    set replies {}
    dict for {option value} $defaults {
	catch {milter configure $option $value}
    }
    releaseBgerrors
    return
}

# ::tm::stopMilter --
#
#	The cleanup of every test: closes the milter::test clients, the
#	good connection and the raw channels, then stop, then forgets what
#	the callbacks recorded while the connections closed.
#
# Results:
#	None.
#
# Side effects:
#	As above.

proc ::tm::stopMilter {} {
    variable trace
    closeClients
    goodClose
    raw::closeAll
    stop
    set trace {}
    return
}

# ::tm::client --
#
#	Opens a milter::test session to the running milter; stopMilter
#	closes it.
#
# Arguments:
#	args	milter::test::open options (-actions, -protocol, ...)
#
# Results:
#	The session command.
#
# Side effects:
#	Connects.

proc ::tm::client {args} {
    variable clients
    set session [milter::test::open [milter address] {*}$args]
    lappend clients $session
    return $session
}

# ::tm::closeClients --
#
#	Closes every session opened by client that is still open.
#
# Results:
#	None.
#
# Side effects:
#	Closes connections.

proc ::tm::closeClients {} {
    variable clients
    foreach session $clients {
	if {[info commands $session] ne ""} {
	    catch {$session close}
	}
    }
    set clients {}
    return
}

# ::tm::record --
#
#	The recording callback: keeps its context, event and arguments and
#	answers what setReply, setHandler or handle arranged for the event.
#
# Arguments:
#	event	the event name (the registered prefix holds it)
#	ctx	the context command
#	args	the event's arguments
#
# Results:
#	The arranged result, SMFIS_CONTINUE by default.  A handler's errors
#	and other codes propagate.
#
# Side effects:
#	Appends to the record; runs the handler.

proc ::tm::record {event ctx args} {
    variable trace
    variable replies
    lappend trace [list $ctx $event {*}$args]
    if {![dict exists $replies $event]} {
	return SMFIS_CONTINUE
    }
    lassign [dict get $replies $event] kind value
    switch -- $kind {
	handler {
	    return [uplevel #0 [list {*}$value $ctx {*}$args]]
	}
	lambda {
	    return [apply $value $ctx {*}$args]
	}
    }
    return $value
}

# ::tm::recordAll --
#
#	Registers record for the given events (all by default).
#
# Results:
#	None.
#
# Side effects:
#	Replaces those callbacks.

proc ::tm::recordAll {{which {}}} {
    variable allEvents
    if {![llength $which]} {
	set which $allEvents
    }
    foreach event $which {
	milter register $event [list [namespace current]::record $event]
    }
    return
}

# ::tm::setReply, setHandler, handle --
#
#	Make record return 'reply' for 'event'; or call the command prefix
#	'handler' at global level with the context and the event's
#	arguments; or apply 'lambda' ({ctx args} body) to them; and return
#	what that returns.
#
# Results:
#	None.
#
# Side effects:
#	Replaces the arrangement for the event.

proc ::tm::setReply {event reply} {
    variable replies
    dict set replies $event [list value $reply]
    return
}

proc ::tm::setHandler {event handler} {
    variable replies
    dict set replies $event [list handler $handler]
    return
}

proc ::tm::handle {event lambda} {
    variable replies
    dict set replies $event [list lambda $lambda]
    return
}

# ::tm::events, recorded, stageEvents --
#
#	What record saw, without the contexts: every {event arg...}; those
#	of one event; the event names in order.
#
# Results:
#	A list.
#
# Side effects:
#	None.

proc ::tm::events {} {
    variable trace
    return [lmap item $trace {lrange $item 1 end}]
}

proc ::tm::recorded {event} {
    variable trace
    set result {}
    foreach item $trace {
	if {[lindex $item 1] eq $event} {
	    lappend result [lrange $item 1 end]
	}
    }
    return $result
}

proc ::tm::stageEvents {} {
    variable trace
    return [lmap item $trace {lindex $item 1}]
}

# ::tm::ctxs, ctxEvents, calls, count --
#
#	What record saw, by context: the contexts in order of first
#	appearance; the event names of one context; the argument lists of
#	every call of one event for a context, and how many there were.
#
# Results:
#	A list, or a number.
#
# Side effects:
#	None.

proc ::tm::ctxs {} {
    variable trace
    set result {}
    foreach item $trace {
	set ctx [lindex $item 0]
	if {$ctx ni $result} {
	    lappend result $ctx
	}
    }
    return $result
}

proc ::tm::ctxEvents {ctx} {
    variable trace
    set result {}
    foreach item $trace {
	if {[lindex $item 0] eq $ctx} {
	    lappend result [lindex $item 1]
	}
    }
    return $result
}

proc ::tm::calls {ctx event} {
    variable trace
    set result {}
    foreach item $trace {
	if {[lindex $item 0] eq $ctx && [lindex $item 1] eq $event} {
	    lappend result [lrange $item 2 end]
	}
    }
    return $result
}

proc ::tm::count {ctx event} {
    return [llength [calls $ctx $event]]
}

# ::tm::driveTo --
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
#
# Side effects:
#	Talks to the milter.

proc ::tm::driveTo {session stage} {
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

# ::tm::captureBgerrors, releaseBgerrors, bgerrors --
#
#	Replace the background error handler with a recorder (as the Tcl
#	core's basic-26.1 does), put the old one back, and read what was
#	recorded: {message errorcode errorinfo} per error.  The variables
#	bgerrors ({message errorcode}) and bginfo (errorinfo) hold the
#	same.
#
# Results:
#	None, or the list.
#
# Side effects:
#	Replace the handler; clear the record (capture).

proc ::tm::captureBgerrors {} {
    variable savedBgerror
    variable capturing
    variable bgerrors {}
    variable bginfo {}
    if {!$capturing} {
	set savedBgerror [interp bgerror {}]
	set capturing 1
    }
    interp bgerror {} [namespace current]::BgRecord
    return
}

proc ::tm::BgRecord {message options} {
    variable bgerrors
    variable bginfo
    set code {}
    set info {}
    if {[dict exists $options -errorcode]} {
	set code [dict get $options -errorcode]
    }
    if {[dict exists $options -errorinfo]} {
	set info [dict get $options -errorinfo]
    }
    lappend bgerrors [list $message $code]
    lappend bginfo $info
    return
}

proc ::tm::releaseBgerrors {} {
    variable savedBgerror
    variable capturing
    if {$capturing} {
	interp bgerror {} $savedBgerror
	set capturing 0
    }
    return
}

proc ::tm::bgerrors {} {
    variable bgerrors
    variable bginfo
    return [lmap error $bgerrors info $bginfo {list {*}$error $info}]
}

# ::tm::captureLog, releaseLog, logLines --
#
#	Route the milter's log to a recorder (-logcommand), put the default
#	back, and read the {level message} pairs recorded (also the
#	variable logLines).
#
# Results:
#	None, or the list.
#
# Side effects:
#	Configure the milter.

proc ::tm::captureLog {} {
    variable logLines {}
    milter configure -logcommand [list [namespace current]::LogRecord]
    return
}

proc ::tm::LogRecord {level message} {
    variable logLines
    lappend logLines [list $level $message]
    return
}

proc ::tm::releaseLog {} {
    milter configure -logcommand {}
    return
}

proc ::tm::logLines {} {
    variable logLines
    return $logLines
}

# ::tm::logFor --
#
#	The log lines that name connection number 'conn'.
#
# Results:
#	A list of {level message}.
#
# Side effects:
#	None.

proc ::tm::logFor {conn} {
    variable logLines
    set result {}
    foreach entry $logLines {
	if {[string match "connection $conn\[: \]*" [lindex $entry 1]]} {
	    lappend result $entry
	}
    }
    return $result
}

# ::tm::bytes0to255 --
#
#	A byte string holding every byte value once, repeated 'n' times.
#
# Results:
#	A byte array.
#
# Side effects:
#	None.

proc ::tm::bytes0to255 {{n 1}} {
    set bytes {}
    for {set i 0} {$i < 256} {incr i} {
	append bytes [binary format c $i]
    }
    return [string repeat $bytes $n]
}

# ::tm::hexdump --
#
#	A byte string as hexadecimal, so that failures print readably.
#
# Results:
#	A string.
#
# Side effects:
#	None.

proc ::tm::hexdump {bytes} {
    binary scan $bytes H* hex
    return $hex
}

# ::tm::staleSocket --
#
#	Leaves a unix socket file at 'path' that nobody listens on (perl
#	binds it and exits).
#
# Results:
#	None.
#
# Side effects:
#	Creates the socket file.

proc ::tm::staleSocket {path} {
    exec perl -MSocket -e {
	socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
	bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!";
    } $path
    return
}

# ::tm::greet --
#
#	Opens a milter::test session and says CONNECT (from NAME, 192.0.2.1
#	port 2525) and HELO NAME.
#
# Arguments:
#	addr		the milter's address
#	name		the client's host name
#	actionsVar	if given, the caller's variable that receives the
#			actions of the two replies
#
# Results:
#	The session command.
#
# Side effects:
#	Connects and talks to the milter.

proc ::tm::greet {addr {name client.example.org} {actionsVar ""}} {
    set session [milter::test::open $addr]
    set c [$session connect $name inet 2525 192.0.2.1]
    set h [$session helo $name]
    if {$actionsVar ne ""} {
	upvar 1 $actionsVar actions
	set actions [list [dict get $c action] [dict get $h action]]
    }
    return $session
}

# ----------------------------------------------------------------------
# The well-behaved connection of the bad-input tests.
# ----------------------------------------------------------------------

# ::tm::goodOpen --
#
#	Opens a session, sends CONNECT and HELO and remembers its context.
#	It is connection number 1 when it is the first after start.
#
# Results:
#	The session command.
#
# Side effects:
#	Connects.

proc ::tm::goodOpen {addr} {
    variable good
    variable goodCtx
    set good [greet $addr good.example.org]
    set goodCtx [lindex [ctxs] 0]
    return $good
}

# ::tm::goodMessage --
#
#	Runs a whole message on the good connection.
#
# Results:
#	A list: the action, the stage, whether its context is still there,
#	and the events its context saw after those it had before; or
#	{error MESSAGE}.
#
# Side effects:
#	Talks to the milter.

proc ::tm::goodMessage {} {
    variable good
    variable goodCtx
    set before [llength [ctxEvents $goodCtx]]
    if {[catch {
	$good message -text "Subject: still fine\n\nbody\n"
    } result]} {
	return [list error $result]
    }
    return [list [dict get $result action] [dict get $result stage] \
	    [llength [info commands $goodCtx]] \
	    [lrange [ctxEvents $goodCtx] $before end]]
}

# ::tm::goodClose --
#
#	Says QUIT on the good connection, if there is one.
#
# Results:
#	None.
#
# Side effects:
#	Closes the connection.

proc ::tm::goodClose {} {
    variable good
    variable goodCtx
    if {$good ne ""} {
	catch {$good quit}
	set good {}
    }
    set goodCtx {}
    return
}

# ::tm::setup --
#
#	start, then the good connection.
#
# Results:
#	The address.
#
# Side effects:
#	As above.

proc ::tm::setup {args} {
    set addr [start {*}$args]
    goodOpen $addr
    return $addr
}

# ::tm::outcome --
#
#	After a bad input on the raw channel 'chan' (connection number 2):
#	waits for the milter to close it and for its close callback, then
#	completes a message on the good connection.
#
# Results:
#	A dict:
#	  replies	the packets the client read, then eof (or timeout)
#	  log		the log lines naming connection 2
#	  ends		the abort and close callbacks of the bad connection,
#			in the order they ran
#	  ctxs		the bad connection's context commands still existing
#	  good		goodMessage
#	  bgerrors	background errors
#
# Side effects:
#	As above.

proc ::tm::outcome {chan {ms 5000}} {
    variable bgerrors
    set replies [raw::drain $chan $ms]
    waitUntil {[::tm::badClosed]} 2000
    # Give a duplicate callback the chance to show up.
    sleep 100
    set ends {}
    set alive {}
    foreach ctx [badCtxs] {
	foreach event [ctxEvents $ctx] {
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

# ::tm::badClosed, badCtxs --
#
#	Whether a context other than the good one has had its close
#	callback; the contexts other than the good connection's.
#
# Results:
#	1 or 0; a list.
#
# Side effects:
#	None.

proc ::tm::badClosed {} {
    foreach ctx [badCtxs] {
	if {[count $ctx close]} {
	    return 1
	}
    }
    return 0
}

proc ::tm::badCtxs {} {
    variable goodCtx
    return [lsearch -all -inline -exact -not [ctxs] $goodCtx]
}
