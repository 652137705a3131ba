# mta.tcl --
#
#	Real MTAs (Postfix, Sendmail) and OpenDKIM's miltertest in front of
#	TclMilter (see ../harness.tcl): the milter under test as a child
#	process that logs every event (::tm::mta::milter, running
#	mta/milters/everything.tcl by default), an SMTP client
#	(::tm::smtp), the parser of messages captured by smtp-sink
#	(::tm::sink), and sessions through an MTA (::tm::mta::session,
#	deliver).  mta/postfix.tcl and mta/sendmail.tcl start the private
#	MTA instances (::tm::postfix, ::tm::sendmail).
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::tm::mta {
    variable here [file join $::tm::testDir mta]
}

# ---------------------------------------------------------------------
# The milter under test
# ---------------------------------------------------------------------

namespace eval ::tm::mta::milter {}

# ::tm::mta::milter::canLoad --
#
#	Can a child tclsh "package require TclMilter"?
#
# Results:
#	1 or 0.
#
# Side effects:
#	Runs a child tclsh.

proc ::tm::mta::milter::canLoad {} {
    if {[info exists ::env(TCLMILTER_MTA_MILTER)]} {
	return 1
    }
    set saved [array get ::env TCLLIBPATH]
    set ::env(TCLLIBPATH) [::tm::libpath]
    set ok [expr {![catch {exec [info nameofexecutable] << \
	    "package require TclMilter; exit 0" 2>@1}]}]
    unset ::env(TCLLIBPATH)
    array set ::env $saved
    return $ok
}

# ::tm::mta::milter::start --
#
#	Start a milter script (default milters/everything.tcl) listening
#	on a unix socket or on 127.0.0.1 (-transport unix|inet|inet6).
#	A unix socket is given mode 0660 and group -socketgroup (default
#	postfix, whose smtpd connects to it).  Arguments after the options
#	(or after "--") go to the script.  Waits until it
#	logs "ready".  Returns a dict:
#	    pid log out dir
#	    spec	the -connection spec the milter got
#	    postfix	the same endpoint in Postfix syntax
#	    sendmail	the same endpoint in Sendmail S= syntax
#	    path	the unix socket path (unix only)
#
# Results:
#	The dict described above.
#
# Side effects:
#	Starts the process in a new temporary directory; an error when it
#	does not log "ready" within 15 s.

proc ::tm::mta::milter::start {args} {
    set opts [dict create -transport unix \
	    -script [file join $::tm::mta::here milters everything.tcl] \
	    -socketgroup postfix]
    while {[string match -* [lindex $args 0]]} {
	if {[lindex $args 0] eq "--"} {
	    set args [lrange $args 1 end]
	    break
	}
	set args [lassign $args opt value]
	if {![dict exists $opts $opt]} {
	    error "unknown option \"$opt\""
	}
	dict set opts $opt $value
    }
    set dir [::tm::tempdir -milter]
    set log $dir/milter.log
    set out $dir/milter.out
    ::tm::writeFile $log ""
    set m [dict create dir $dir log $log out $out]
    switch -- [dict get $opts -transport] {
	unix {
	    set path $dir/m.sock
	    dict set m path $path
	    dict set m spec unix:$path
	    dict set m postfix unix:$path
	    dict set m sendmail local:$path
	}
	inet {
	    set port [::tm::freePort]
	    dict set m spec inet:$port@127.0.0.1
	    dict set m postfix inet:127.0.0.1:$port
	    dict set m sendmail inet:$port@127.0.0.1
	}
	inet6 {
	    set port [::tm::freePort ::1]
	    dict set m spec inet6:$port@::1
	    dict set m postfix inet:\[::1\]:$port
	    dict set m sendmail inet6:$port@::1
	}
	default {
	    error "unknown transport \"[dict get $opts -transport]\""
	}
    }
    # TCLMILTER_MTA_MILTER may replace the whole "interpreter script"
    # prefix with another milter that implements the same command
    # language (to check the tests against a reference implementation).
    if {[info exists ::env(TCLMILTER_MTA_MILTER)]} {
	set cmd $::env(TCLMILTER_MTA_MILTER)
    } else {
	set cmd [list [info nameofexecutable] [dict get $opts -script]]
    }
    set saved [array get ::env TCLLIBPATH]
    set ::env(TCLLIBPATH) [::tm::libpath]
    try {
	set pid [::tm::background $out {*}$cmd [dict get $m spec] $log \
		{*}$args]
    } finally {
	unset ::env(TCLLIBPATH)
	array set ::env $saved
    }
    dict set m pid $pid
    ::tm::writeFile $dir/milter.pid $pid
    if {![::tm::waitUntil {
	    [llength [::tm::mta::milter::events $m ready]]
	    || ![::tm::alive $pid]} 15000]
	    || ![llength [events $m ready]]} {
	set why [expr {[::tm::alive $pid] ? "no ready line in 15 s"
		: "it exited"}]
	::tm::kill $pid
	error "milter [dict get $opts -script] did not start ($why):\
		[::tm::readFile $out]"
    }
    if {[dict exists $m path]} {
	# smtpd runs as user postfix: let the socket's group in.
	::tm::waitUntil {[file exists [dict get $m path]]} 5000
	file attributes [dict get $m path] -permissions 0660
	if {[dict get $opts -socketgroup] ne ""} {
	    catch {file attributes [dict get $m path] \
		    -group [dict get $opts -socketgroup]}
	}
    }
    return $m
}

# ::tm::mta::milter::alive --
#
#	Is the milter process still running (it did not crash)?
#
# Results:
#	1 or 0.
#
# Side effects:
#	None.

proc ::tm::mta::milter::alive {m} {
    return [::tm::alive [dict get $m pid]]
}

# ::tm::mta::milter::stop --
#
#	Stop a milter started by start (SIGTERM; the script's milter main
#	returns or the process dies).
#
# Results:
#	None.
#
# Side effects:
#	Ends the process.

proc ::tm::mta::milter::stop {m} {
    ::tm::kill [dict get $m pid]
}

# ::tm::mta::milter::lines --
#
#	All log lines (each a Tcl list) written so far.
#
# Results:
#	A list of lists.
#
# Side effects:
#	None.

proc ::tm::mta::milter::lines {m} {
    set f [open [dict get $m log]]
    fconfigure $f -encoding utf-8
    set lines {}
    foreach line [split [read $f] \n] {
	if {$line ne ""} {
	    lappend lines $line
	}
    }
    close $f
    return $lines
}

# ::tm::mta::milter::mark --
#
#	The number of log lines so far, to pass to "since".
#
# Results:
#	A number.
#
# Side effects:
#	None.

proc ::tm::mta::milter::mark {m} {
    return [llength [lines $m]]
}

# ::tm::mta::milter::since --
#
#	Log lines after a mark.
#
# Results:
#	A list of lists.
#
# Side effects:
#	None.

proc ::tm::mta::milter::since {m mark} {
    return [lrange [lines $m] $mark end]
}

# ::tm::mta::milter::events --
#
#	Log lines whose first word is event (after mark).
#
# Results:
#	A list of lists.
#
# Side effects:
#	None.

proc ::tm::mta::milter::events {m event {mark 0}} {
    set out {}
    foreach line [since $m $mark] {
	if {[lindex $line 0] eq $event} {
	    lappend out $line
	}
    }
    return $out
}

# ::tm::mta::milter::waitEvent --
#
#	Wait until count lines of event appear after mark; returns the lines
#	after mark (so the caller can check the whole sequence).
#
# Results:
#	The log lines after mark.
#
# Side effects:
#	Services events while waiting.

proc ::tm::mta::milter::waitEvent {m event {mark 0} {count 1}
	{timeoutMs 10000}} {
    ::tm::waitUntil {
	[llength [::tm::mta::milter::events $m $event $mark]] >= $count
    } $timeoutMs
    return [since $m $mark]
}

# ::tm::mta::milter::quiesce --
#
#	Wait until every MTA connection the milter logged has closed, so
#	that lines of one session never spill into the next test.  (A
#	connection closed before CONNECT logs a close without a connect.)
#
# Results:
#	1, or 0 on time-out.
#
# Side effects:
#	Services events while waiting.

proc ::tm::mta::milter::quiesce {m {timeoutMs 15000}} {
    return [::tm::waitUntil {
	[llength [::tm::mta::milter::events $m connect]]
	<= [llength [::tm::mta::milter::events $m close]]
    } $timeoutMs]
}

# ::tm::mta::milter::settle --
#
#	Wait until the milter log has had no new line for quietMs (at most
#	timeoutMs), for clients that open connections without CONNECT.
#
# Results:
#	1, or 0 on time-out.
#
# Side effects:
#	Services events while waiting.

proc ::tm::mta::milter::settle {m {quietMs 300} {timeoutMs 10000}} {
    set deadline [expr {[clock milliseconds] + $timeoutMs}]
    set count [mark $m]
    set since [clock milliseconds]
    while {[clock milliseconds] < $deadline} {
	::tm::waitUntil 0 50
	set now [mark $m]
	if {$now != $count} {
	    set count $now
	    set since [clock milliseconds]
	} elseif {[clock milliseconds] - $since >= $quietMs} {
	    return 1
	}
    }
    return 0
}

# ::tm::mta::milter::names --
#
#	Just the event names of log lines (for sequence checks).
#
# Results:
#	A list of event names.
#
# Side effects:
#	None.

proc ::tm::mta::milter::names {lines} {
    return [lmap line $lines {lindex $line 0}]
}

# ---------------------------------------------------------------------
# SMTP client
# ---------------------------------------------------------------------

namespace eval ::tm::smtp {
    variable timeout 30000
    variable wake
}

# ::tm::smtp::open --
#
#	Connect to an SMTP server and read its greeting.  Options:
#	-myaddr ADDR (source address, e.g. 127.0.0.2).  Returns
#	{chan greetingLines}.
#
# Results:
#	{chan greetingLines}.
#
# Side effects:
#	Connects.

proc ::tm::smtp::open {host port args} {
    set chan [socket {*}$args $host $port]
    fconfigure $chan -translation binary -blocking 0 -buffering full
    return [list $chan [reply $chan]]
}

# ::tm::smtp::readline --
#
#	Read one reply line into varName with the CRLF removed, waiting at
#	most timeout ms.  Returns 1, or 0 at EOF; an error on timeout.
#
# Results:
#	1, or 0 at EOF; an error on time-out.
#
# Side effects:
#	Services events while waiting; sets the caller's variable.

proc ::tm::smtp::readline {chan varName} {
    variable timeout
    variable wake
    upvar 1 $varName line
    set deadline [expr {[clock milliseconds] + $timeout}]
    while {1} {
	if {[::gets $chan line] >= 0} {
	    set line [string trimright $line \r]
	    return 1
	}
	if {[eof $chan]} {
	    return 0
	}
	set left [expr {$deadline - [clock milliseconds]}]
	if {$left <= 0} {
	    error "SMTP reply timed out"
	}
	set wake($chan) 0
	chan event $chan readable [list set ::tm::smtp::wake($chan) 1]
	set id [after $left [list set ::tm::smtp::wake($chan) 2]]
	vwait ::tm::smtp::wake($chan)
	after cancel $id
	chan event $chan readable {}
	unset wake($chan)
    }
}

# ::tm::smtp::reply --
#
#	Read one (possibly multi-line) reply; a list of its lines.  If the
#	server closes the connection, the list ends with "<EOF>".
#
# Results:
#	A list of lines.
#
# Side effects:
#	Services events while waiting.

proc ::tm::smtp::reply {chan} {
    set lines {}
    while {[readline $chan line]} {
	lappend lines $line
	if {![regexp {^\d\d\d-} $line]} {
	    return $lines
	}
    }
    lappend lines <EOF>
    return $lines
}

# ::tm::smtp::write --
#
#	Send bytes (blocking, so large DATA goes out completely).
#
# Results:
#	None.
#
# Side effects:
#	Writes to the channel.

proc ::tm::smtp::write {chan bytes} {
    fconfigure $chan -blocking 1
    puts -nonewline $chan $bytes
    flush $chan
    fconfigure $chan -blocking 0
}

# ::tm::smtp::command --
#
#	Send one command line, return its reply lines.
#
# Results:
#	The reply lines, or {<EOF>} when the write failed.
#
# Side effects:
#	Talks to the server.

proc ::tm::smtp::command {chan line} {
    if {[catch {write $chan $line\r\n}]} {
	return [list <EOF>]
    }
    return [reply $chan]
}

# ::tm::smtp::wire --
#
#	A message as it goes after DATA: LF or CRLF line ends become CRLF,
#	lines starting with "." are dot-stuffed, and ".\r\n" ends it.
#	encoding "binary" takes message as bytes already.
#
# Results:
#	The bytes.
#
# Side effects:
#	None.

proc ::tm::smtp::wire {message {encoding utf-8}} {
    if {$encoding ne "binary"} {
	set message [encoding convertto $encoding $message]
    }
    set message [string map {\r\n \n} $message]
    if {[string index $message end] ne "\n"} {
	append message \n
    }
    set out ""
    foreach line [lrange [split $message \n] 0 end-1] {
	if {[string index $line 0] eq "."} {
	    set line .$line
	}
	append out $line \r\n
    }
    return $out.\r\n
}

# ::tm::smtp::data --
#
#	DATA, the message, the final dot.  Returns {dataReply dotReply};
#	dotReply is {} if DATA was refused.
#
# Results:
#	{dataReply dotReply}.
#
# Side effects:
#	Talks to the server.

proc ::tm::smtp::data {chan message {encoding utf-8}} {
    set r [command $chan DATA]
    if {![string match 354* [lindex $r 0]]} {
	return [list $r {}]
    }
    if {[catch {write $chan [wire $message $encoding]}]} {
	return [list $r [list <EOF>]]
    }
    return [list $r [reply $chan]]
}

# ::tm::smtp::ok --
#
#	Tells whether an SMTP reply is a success (2xx or 3xx).
#
# Results:
#	1 or 0.
#
# Side effects:
#	None.

proc ::tm::smtp::ok {reply} {
    return [regexp {^[23]} [lindex $reply 0]]
}

# ::tm::smtp::transaction --
#
#	MAIL, RCPT..., DATA on an open connection; stops early as an SMTP
#	client would (no RCPT after a failed MAIL, no DATA without an
#	accepted RCPT).  Returns a dict with keys mail, rcpt (one reply per
#	recipient), data, dot; keys for commands not sent are absent.
#	Recipients and sender are given with their ESMTP arguments, e.g.
#	"<a@b.test> NOTIFY=NEVER".
#
# Results:
#	The dict described above.
#
# Side effects:
#	Talks to the server.

proc ::tm::smtp::transaction {chan from rcpts message {encoding utf-8}} {
    set t [dict create]
    dict set t mail [command $chan "MAIL FROM:$from"]
    if {![ok [dict get $t mail]]} {
	return $t
    }
    set any 0
    foreach rcpt $rcpts {
	set r [command $chan "RCPT TO:$rcpt"]
	dict lappend t rcpt $r
	incr any [ok $r]
    }
    if {!$any} {
	return $t
    }
    lassign [data $chan $message $encoding] d dot
    dict set t data $d
    if {[llength $dot]} {
	dict set t dot $dot
    }
    return $t
}

# ::tm::smtp::send --
#
#	One SMTP session with one message.  Options:
#	    -helo NAME (default client.tclmilter.test; "" sends none)
#	    -from ADDR (default <sender@client.tclmilter.test>)
#	    -rcpt LIST (default {<rcpt@dest.tclmilter.test>})
#	    -message TEXT (default a short message)
#	    -encoding ENC (utf-8; binary = message is bytes)
#	    -myaddr ADDR (client source address)
#	    -before LIST (commands sent after EHLO, e.g. {"FOO bar"})
#	Returns a dict: greeting, helo, before (replies), the keys of
#	transaction, quit, queueid (from "queued as ID", if any) and
#	sockname (the client socket's {address name port}).
#
# Results:
#	The dict described above.
#
# Side effects:
#	Connects, talks to the server, closes.

proc ::tm::smtp::send {host port args} {
    set o [dict create -helo client.tclmilter.test \
	    -from <sender@client.tclmilter.test> \
	    -rcpt {<rcpt@dest.tclmilter.test>} \
	    -message [message] -encoding utf-8 -myaddr "" -before {}]
    foreach {opt value} $args {
	if {![dict exists $o $opt]} {
	    error "unknown option \"$opt\""
	}
	dict set o $opt $value
    }
    set sockOpts {}
    if {[dict get $o -myaddr] ne ""} {
	lappend sockOpts -myaddr [dict get $o -myaddr]
    }
    lassign [open $host $port {*}$sockOpts] chan greeting
    set result [dict create greeting $greeting \
	    sockname [fconfigure $chan -sockname]]
    try {
	if {[lindex $greeting end] eq "<EOF>"} {
	    return $result
	}
	if {[dict get $o -helo] ne ""} {
	    dict set result helo [command $chan "EHLO [dict get $o -helo]"]
	}
	foreach cmd [dict get $o -before] {
	    dict lappend result before [command $chan $cmd]
	}
	set result [dict merge $result [transaction $chan \
		[dict get $o -from] [dict get $o -rcpt] \
		[dict get $o -message] [dict get $o -encoding]]]
	if {[dict exists $result dot]} {
	    set qid [queueid [dict get $result dot]]
	    if {$qid ne ""} {
		dict set result queueid $qid
	    }
	}
	dict set result quit [command $chan QUIT]
    } finally {
	close $chan
    }
    return $result
}

# ::tm::smtp::queueid --
#
#	The queue id in a "250 2.0.0 Ok: queued as ID" (Postfix) or
#	"250 2.0.0 ID Message accepted for delivery" (Sendmail) reply.
#
# Results:
#	The id, or "".
#
# Side effects:
#	None.

proc ::tm::smtp::queueid {reply} {
    set line [lindex $reply end]
    if {[regexp {queued as ([0-9A-Za-z]+)} $line -> id]
	    || [regexp {^250 2\.0\.0 ([0-9A-Za-z]+) Message accepted} \
		    $line -> id]} {
	return $id
    }
    return ""
}

# ::tm::smtp::message --
#
#	A simple message (no Date or Message-ID, so that delivered copies
#	can be compared exactly).  Options: -subject, -from, -to, -headers
#	(list of name value), -body (text; LF line ends are fine).
#
# Results:
#	The message text.
#
# Side effects:
#	None.

proc ::tm::smtp::message {args} {
    set o [dict merge {-subject "test message"
	-from sender@client.tclmilter.test -to rcpt@dest.tclmilter.test
	-headers {} -body "Hello.\n"} $args]
    set m "From: <[dict get $o -from]>\nTo: <[dict get $o -to]>\n"
    append m "Subject: [dict get $o -subject]\n"
    foreach {name value} [dict get $o -headers] {
	append m "$name: $value\n"
    }
    append m \n [dict get $o -body]
    return $m
}

# ---------------------------------------------------------------------
# Messages captured by smtp-sink -d
# ---------------------------------------------------------------------

namespace eval ::tm::sink {}

# ::tm::sink::start --
#
#	Run smtp-sink on 127.0.0.1:port, dumping every message to its own
#	file in dir.  Returns the pid.
#
# Results:
#	The pid.
#
# Side effects:
#	Starts smtp-sink (killed by ::tm::finish); an error when it does
#	not listen within 10 s.

proc ::tm::sink::start {dir port} {
    file mkdir $dir/msgs
    file attributes $dir/msgs -owner postfix
    set pid [::tm::background $dir/sink.out /usr/sbin/smtp-sink -u postfix \
	    -d $dir/msgs/%H%M%S. 127.0.0.1:$port 64]
    ::tm::writeFile $dir/sink.pid $pid
    if {![::tm::waitUntil {[::tm::listening $port]
	    || ![::tm::alive $pid]} 10000] || ![::tm::alive $pid]} {
	error "smtp-sink did not start: [::tm::readFile $dir/sink.out]"
    }
    return $pid
}

# ::tm::sink::files --
#
#	Captured message files in dir, oldest first.
#
# Results:
#	A list of file names.
#
# Side effects:
#	None.

proc ::tm::sink::files {dir} {
    return [lsort [glob -nocomplain -types f $dir/msgs/*]]
}

# ::tm::sink::find --
#
#	The captured messages (parsed) whose text contains pattern (a
#	regexp, e.g. the MTA queue id in its Received: header).
#
# Results:
#	A list of dicts (see parse).
#
# Side effects:
#	Reads the files.

proc ::tm::sink::find {dir pattern} {
    set out {}
    foreach file [files $dir] {
	set data [::tm::readFile $file]
	if {[regexp -- $pattern $data]} {
	    lappend out [parse $data]
	}
    }
    return $out
}

# ::tm::sink::parse --
#
#	A captured file -> dict:
#	    helo mail rcpts	the SMTP envelope smtp-sink received
#				(arguments of EHLO, MAIL, each RCPT)
#	    headers		list of {name value} as delivered, from the
#				MTA's Received: on (smtp-sink's own block is
#				removed); values keep folds as "\n" + WSP
#	    body		the body with LF line ends
#	All strings are the raw bytes (8-bit stays undecoded).
#
# Results:
#	The dict described above.
#
# Side effects:
#	None.

proc ::tm::sink::parse {data} {
    set split [string first \n\n $data]
    set head [string range $data 0 $split-1]
    set body [string range $data $split+2 end]
    # smtp-sink ends each dump with an empty line.
    if {[string index $body end] eq "\n"} {
	set body [string range $body 0 end-1]
    }
    set fields {}
    foreach line [split $head \n] {
	if {[regexp {^[ \t]} $line] && [llength $fields]} {
	    lset fields end end "[lindex $fields end end]\n$line"
	} elseif {[regexp {^([^:]+):[ ]?(.*)$} $line -> name value]} {
	    lappend fields [list $name $value]
	}
    }
    set msg [dict create rcpts {} body $body headers {} helo "" mail ""]
    set inSink 1
    foreach field $fields {
	lassign $field name value
	if {$inSink} {
	    switch -- $name {
		X-Helo-Args { dict set msg helo $value }
		X-Mail-Args { dict set msg mail $value }
		X-Rcpt-Args { dict lappend msg rcpts $value }
		Received { set inSink 0 }
	    }
	    continue
	}
	dict lappend msg headers $field
    }
    return $msg
}

# ::tm::sink::header --
#
#	Values of all headers called name (case-insensitive).
#
# Results:
#	A list of values.
#
# Side effects:
#	None.

proc ::tm::sink::header {msg name} {
    set out {}
    foreach field [dict get $msg headers] {
	if {[string equal -nocase [lindex $field 0] $name]} {
	    lappend out [lindex $field 1]
	}
    }
    return $out
}

# ::tm::sink::fields --
#
#	"Name: value" for each header except Received: (MTA-dependent).
#
# Results:
#	A list of strings.
#
# Side effects:
#	None.

proc ::tm::sink::fields {msg} {
    set out {}
    foreach field [dict get $msg headers] {
	if {[lindex $field 0] ne "Received"} {
	    lappend out "[lindex $field 0]: [lindex $field 1]"
	}
    }
    return $out
}

# ::tm::sink::names --
#
#	Header names in order, without Received: (MTA-dependent).
#
# Results:
#	A list of header names.
#
# Side effects:
#	None.

proc ::tm::sink::names {msg} {
    set out {}
    foreach field [dict get $msg headers] {
	if {[lindex $field 0] ne "Received"} {
	    lappend out [lindex $field 0]
	}
    }
    return $out
}

# ---------------------------------------------------------------------
# Sessions through an MTA (postfix or sendmail) with the milter m
# ---------------------------------------------------------------------

# ::tm::mta::doMessage --
#
#	A message whose X-Milter-Do header holds commands (none if empty);
#	more options go to ::tm::smtp::message.
#
# Results:
#	The message text.
#
# Side effects:
#	None.

proc ::tm::mta::doMessage {commands args} {
    set headers {}
    if {[dict exists $args -headers]} {
	set headers [dict get $args -headers]
	dict unset args -headers
    }
    if {$commands ne ""} {
	lappend headers X-Milter-Do $commands
    }
    return [::tm::smtp::message -headers $headers {*}$args]
}

# ::tm::mta::session --
#
#	Send one message through ::tm::${mta}::send (options as for it)
#	and wait until milter m has seen the session end.  Returns the SMTP
#	result dict plus "events": the milter log lines of the session.
#
# Results:
#	The dict described above.
#
# Side effects:
#	Talks SMTP; services events while waiting.

proc ::tm::mta::session {mta m args} {
    ::tm::mta::milter::quiesce $m
    set mark [::tm::mta::milter::mark $m]
    set r [::tm::${mta}::send {*}$args]
    # A slow milter (sanitizer builds) may log after the MTA answered.
    ::tm::waitUntil {[::tm::mta::milter::mark $m] > $mark} 5000
    ::tm::mta::milter::quiesce $m
    dict set r events [::tm::mta::milter::since $m $mark]
    return $r
}

# ::tm::mta::diagnostics --
#
#	For an error message: the last warnings of the MTA's log (when the
#	harness can read it) and the end of the milter's own output, so that
#	a failure in CI, whose temporary directories are gone, can be read.
#
# Results:
#	Text to append to an error message.
#
# Side effects:
#	Reads the logs.

proc ::tm::mta::diagnostics {mta m} {
    set out ""
    if {[info commands ::tm::${mta}::log] ne ""} {
	set lines [lsearch -all -inline -regexp \
		[split [::tm::${mta}::log] \n] {milter|warning|fatal|error}]
	append out "\n--- $mta log (milter/warning lines, last 12):\n" \
		[join [lrange $lines end-11 end] \n]
    }
    if {[dict exists $m out] && [file exists [dict get $m out]]} {
	set lines [split [string trimright \
		[::tm::readFile [dict get $m out] auto]] \n]
	append out "\n--- milter output (last 12 lines):\n" \
		[join [lrange $lines end-11 end] \n]
    }
    return $out
}

# ::tm::mta::deliver --
#
#	session, then the one copy smtp-sink received (parsed), with the
#	session's "events" and SMTP "result" added.
#
# Results:
#	The parsed message dict; an error when the message was not
#	accepted or not delivered exactly once.
#
# Side effects:
#	As session.

proc ::tm::mta::deliver {mta m args} {
    set r [session $mta $m {*}$args]
    if {![dict exists $r queueid]} {
	error "not accepted: [dict remove $r events][diagnostics $mta $m]"
    }
    set msgs [::tm::${mta}::delivered [dict get $r queueid]]
    if {[llength $msgs] != 1} {
	error "[llength $msgs] copies delivered"
    }
    set msg [lindex $msgs 0]
    dict set msg events [dict get $r events]
    dict set msg result $r
    return $msg
}

# ::tm::mta::replies --
#
#	The SMTP replies of a session result, for exact comparison:
#	before (replies to -before commands), mail, each rcpt, data and dot
#	(only those that were sent).
#
# Results:
#	A dict: key -> reply lines.
#
# Side effects:
#	None.

proc ::tm::mta::replies {r} {
    set out {}
    foreach key {before mail rcpt data dot} {
	if {[dict exists $r $key]} {
	    lappend out $key [dict get $r $key]
	}
    }
    return $out
}

# ::tm::mta::eventNames --
#
#	The event names of a session result or delivered message.
#
# Results:
#	A list of event names.
#
# Side effects:
#	None.

proc ::tm::mta::eventNames {r} {
    return [::tm::mta::milter::names [dict get $r events]]
}

source [file join $::tm::mta::here postfix.tcl]
source [file join $::tm::mta::here sendmail.tcl]
