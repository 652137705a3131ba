# harness.tcl --
#
#	Helpers for testing TclMilter against real MTAs (Postfix, Sendmail)
#	and OpenDKIM's miltertest.  Sourced by tests/postfix.test,
#	tests/sendmail.test and tests/miltertest-lua.test.
#
#	Everything runs on loopback addresses and unix sockets, in temporary
#	directories /tmp/tclmilter-mta-PID-N that ::mta::cleanup removes,
#	with every process it started.  Directories left by a test process
#	that died are cleaned up the next time this file is sourced.
#
#	This file holds the common parts: temporary directories, processes,
#	free ports, the milter under test, an SMTP client and the parser for
#	messages captured by smtp-sink.  postfix.tcl and sendmail.tcl (in
#	this directory) start private MTA instances.

package require Tcl 8.6

namespace eval ::mta {
    variable here [file dirname [file normalize [info script]]]
    variable top [file dirname [file dirname $here]]
    variable pids {}		;# processes started, killed by cleanup
    variable dirs {}		;# temporary directories, removed by cleanup
    variable cleanups {}	;# scripts run first by cleanup
    variable seq 0
    # Set TCLMILTER_MTA_KEEP=1 to keep temporary directories (logs).
    variable keep [expr {[info exists ::env(TCLMILTER_MTA_KEEP)]
	    && $::env(TCLMILTER_MTA_KEEP)}]
}

# ::mta::tempdir --
#	Create a new, empty temporary directory readable by the MTA's
#	unprivileged users, and remember it for cleanup.

proc ::mta::tempdir {{tag ""}} {
    variable dirs
    variable seq
    while 1 {
	set dir /tmp/tclmilter-mta-[pid]-[incr seq]$tag
	if {![file exists $dir]} {
	    break
	}
    }
    file mkdir $dir
    file attributes $dir -permissions 0755
    lappend dirs $dir
    return $dir
}

# ::mta::spawn --
#	Start a background process with stdout and stderr to outFile and
#	remember its pid for cleanup.  Returns the pid.

proc ::mta::spawn {outFile args} {
    variable pids
    set pid [exec {*}$args >& $outFile &]
    lappend pids $pid
    return $pid
}

proc ::mta::alive {pid} {
    if {![file isdirectory /proc/$pid]} {
	return 0
    }
    # A zombie has exited; it only waits to be reaped.
    if {[catch {open /proc/$pid/stat} f]} {
	return 0
    }
    set stat [read $f]
    close $f
    return [expr {[lindex [split [string range $stat \
	    [string last ")" $stat] end] " "] 1] ne "Z"}]
}

# ::mta::kill --
#	SIGTERM, then SIGKILL if the process still lives after graceMs.

proc ::mta::kill {pid {graceMs 3000}} {
    if {![alive $pid]} {
	return
    }
    catch {exec kill -TERM $pid}
    if {![waitUntil {![::mta::alive $pid]} $graceMs]} {
	catch {exec kill -KILL $pid}
	waitUntil {![::mta::alive $pid]} 2000
    }
    # Reap it (Tcl reaps detached children when it next runs exec).
    catch {exec true}
}

# ::mta::waitUntil --
#	Evaluate cond (in the caller's scope) every 25 ms until it is true or
#	timeoutMs has passed.  Returns the last value of cond (0 or 1).

proc ::mta::waitUntil {cond timeoutMs} {
    set deadline [expr {[clock milliseconds] + $timeoutMs}]
    while {1} {
	if {[uplevel 1 [list expr $cond]]} {
	    return 1
	}
	if {[clock milliseconds] >= $deadline} {
	    return 0
	}
	set ::mta::tick 0
	after 25 {set ::mta::tick 1}
	vwait ::mta::tick
    }
}

# ::mta::freePort --
#	A TCP port on host that nobody listens on right now.

proc ::mta::freePort {{host 127.0.0.1}} {
    variable givenPorts
    # A port is free again once its probe is closed, so two calls made
    # before anything binds (Postfix's listeners are all chosen before
    # master starts) could get the same one; never hand a port out twice.
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

# ::mta::listening --
#	Is something listening on TCP host:port?  Reads /proc/net/tcp{,6}
#	instead of connecting, so no SMTP session (and no milter connection)
#	is made by asking.

proc ::mta::listening {port {family inet}} {
    set file [expr {$family eq "inet6" ? "/proc/net/tcp6" : "/proc/net/tcp"}]
    set f [open $file]
    set lines [split [read $f] \n]
    close $f
    set hex [format %04X $port]
    foreach line [lrange $lines 1 end] {
	set local [lindex $line 1]
	if {[string match *:$hex $local] && [lindex $line 3] eq "0A"} {
	    return 1
	}
    }
    return 0
}

proc ::mta::readFile {path {translation binary}} {
    set f [open $path r]
    fconfigure $f -translation $translation
    set data [read $f]
    close $f
    return $data
}

proc ::mta::writeFile {path data} {
    set f [open $path w]
    puts -nonewline $f $data
    close $f
}

proc ::mta::isRoot {} {
    return [expr {![catch {exec id -u} uid] && $uid == 0}]
}

# ::mta::atCleanup --
#	Register a script for ::mta::cleanup (MTA instances register their
#	stop procedures here).

proc ::mta::atCleanup {script} {
    variable cleanups
    lappend cleanups $script
}

# ::mta::cleanup --
#	Stop everything this process started and remove its temporary
#	directories.  Safe to call more than once.

proc ::mta::cleanup {} {
    variable cleanups
    variable pids
    variable dirs
    variable keep
    foreach script [lreverse $cleanups] {
	if {[catch {uplevel #0 $script} msg]} {
	    puts stderr "mta cleanup: $script: $msg"
	}
    }
    set cleanups {}
    foreach pid [lreverse $pids] {
	kill $pid
    }
    set pids {}
    if {!$keep} {
	foreach dir $dirs {
	    catch {file delete -force $dir}
	}
    } elseif {[llength $dirs]} {
	puts stderr "mta cleanup: kept [join $dirs {, }]"
    }
    set dirs {}
}

# ::mta::cleanupStale --
#	Remove what an earlier test process that died left behind: its
#	MTA daemons (their pid files) and its temporary directories.

proc ::mta::cleanupStale {} {
    foreach dir [glob -nocomplain -types d /tmp/tclmilter-mta-*] {
	if {![regexp {^tclmilter-mta-(\d+)-} [file tail $dir] -> owner]
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
	catch {file delete -force $dir}
    }
}

# ---------------------------------------------------------------------
# The milter under test
# ---------------------------------------------------------------------

namespace eval ::mta::milter {
    # Command prefix that runs a milter script.  TCLMILTER_MTA_MILTER may
    # replace the whole "interpreter script" prefix with another milter
    # that implements the same command language (for checking the
    # harness against a reference implementation).
    variable libpath {}
}

# ::mta::milter::libpath --
#	TCLLIBPATH for milter processes, so that they load the TclMilter
#	being tested: this process's TCLLIBPATH ("make test" points it at
#	the build directory, also for the sanitizer builds) or else the
#	source tree (an in-tree build), then this interpreter's auto_path.
#	Never both: the in-tree build's package would shadow a sanitizer
#	build's (same version), and a milter under test would then run
#	without the sanitizer.

proc ::mta::milter::libpath {} {
    set path {}
    if {[info exists ::env(TCLLIBPATH)]} {
	lappend path {*}$::env(TCLLIBPATH)
    } else {
	# Not [pwd]: Tcl also searches the subdirectories of each entry,
	# and other builds of TclMilter may be there.
	lappend path $::mta::top
    }
    foreach dir $::auto_path {
	if {$dir ni $path} {
	    lappend path $dir
	}
    }
    return $path
}

# ::mta::milter::canLoad --
#	Can a child tclsh "package require TclMilter"?

proc ::mta::milter::canLoad {} {
    if {[info exists ::env(TCLMILTER_MTA_MILTER)]} {
	return 1
    }
    set saved [array get ::env TCLLIBPATH]
    set ::env(TCLLIBPATH) [libpath]
    set ok [expr {![catch {exec [info nameofexecutable] << \
	    "package require TclMilter; exit 0" 2>@1}]}]
    unset ::env(TCLLIBPATH)
    array set ::env $saved
    return $ok
}

# ::mta::milter::start --
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

proc ::mta::milter::start {args} {
    set opts [dict create -transport unix \
	    -script [file join $::mta::here milters everything.tcl] \
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
    set dir [::mta::tempdir -milter]
    set log $dir/milter.log
    set out $dir/milter.out
    ::mta::writeFile $log ""
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
	    set port [::mta::freePort]
	    dict set m spec inet:$port@127.0.0.1
	    dict set m postfix inet:127.0.0.1:$port
	    dict set m sendmail inet:$port@127.0.0.1
	}
	inet6 {
	    set port [::mta::freePort ::1]
	    dict set m spec inet6:$port@::1
	    dict set m postfix inet:\[::1\]:$port
	    dict set m sendmail inet6:$port@::1
	}
	default {
	    error "unknown transport \"[dict get $opts -transport]\""
	}
    }
    if {[info exists ::env(TCLMILTER_MTA_MILTER)]} {
	set cmd $::env(TCLMILTER_MTA_MILTER)
    } else {
	set cmd [list [info nameofexecutable] [dict get $opts -script]]
    }
    set saved [array get ::env TCLLIBPATH]
    set ::env(TCLLIBPATH) [libpath]
    try {
	set pid [::mta::spawn $out {*}$cmd [dict get $m spec] $log {*}$args]
    } finally {
	unset ::env(TCLLIBPATH)
	array set ::env $saved
    }
    dict set m pid $pid
    ::mta::writeFile $dir/milter.pid $pid
    if {![::mta::waitUntil {
	    [llength [::mta::milter::events $m ready]]
	    || ![::mta::alive $pid]} 15000]
	    || ![llength [events $m ready]]} {
	set why [expr {[::mta::alive $pid] ? "no ready line in 15 s"
		: "it exited"}]
	::mta::kill $pid
	error "milter [dict get $opts -script] did not start ($why):\
		[::mta::readFile $out]"
    }
    if {[dict exists $m path]} {
	# smtpd runs as user postfix: let the socket's group in.
	::mta::waitUntil {[file exists [dict get $m path]]} 5000
	file attributes [dict get $m path] -permissions 0660
	if {[dict get $opts -socketgroup] ne ""} {
	    catch {file attributes [dict get $m path] \
		    -group [dict get $opts -socketgroup]}
	}
    }
    return $m
}

# ::mta::milter::alive --
#	Is the milter process still running (it did not crash)?

proc ::mta::milter::alive {m} {
    return [::mta::alive [dict get $m pid]]
}

# ::mta::milter::stop --
#	Stop a milter started by start (SIGTERM; the script's milter main
#	returns or the process dies).

proc ::mta::milter::stop {m} {
    ::mta::kill [dict get $m pid]
}

# ::mta::milter::lines --
#	All log lines (each a Tcl list) written so far.

proc ::mta::milter::lines {m} {
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

# ::mta::milter::mark --
#	The number of log lines so far, to pass to "since".

proc ::mta::milter::mark {m} {
    return [llength [lines $m]]
}

# ::mta::milter::since --
#	Log lines after a mark.

proc ::mta::milter::since {m mark} {
    return [lrange [lines $m] $mark end]
}

# ::mta::milter::events --
#	Log lines whose first word is event (after mark).

proc ::mta::milter::events {m event {mark 0}} {
    set out {}
    foreach line [since $m $mark] {
	if {[lindex $line 0] eq $event} {
	    lappend out $line
	}
    }
    return $out
}

# ::mta::milter::waitEvent --
#	Wait until count lines of event appear after mark; returns the lines
#	after mark (so the caller can check the whole sequence).

proc ::mta::milter::waitEvent {m event {mark 0} {count 1} {timeoutMs 10000}} {
    ::mta::waitUntil {
	[llength [::mta::milter::events $m $event $mark]] >= $count
    } $timeoutMs
    return [since $m $mark]
}

# ::mta::milter::quiesce --
#	Wait until every MTA connection the milter logged has closed, so
#	that lines of one session never spill into the next test.  (A
#	connection closed before CONNECT logs a close without a connect.)

proc ::mta::milter::quiesce {m {timeoutMs 15000}} {
    return [::mta::waitUntil {
	[llength [::mta::milter::events $m connect]]
	<= [llength [::mta::milter::events $m close]]
    } $timeoutMs]
}

# ::mta::milter::settle --
#	Wait until the milter log has had no new line for quietMs (at most
#	timeoutMs), for clients that open connections without CONNECT.

proc ::mta::milter::settle {m {quietMs 300} {timeoutMs 10000}} {
    set deadline [expr {[clock milliseconds] + $timeoutMs}]
    set count [mark $m]
    set since [clock milliseconds]
    while {[clock milliseconds] < $deadline} {
	::mta::waitUntil 0 50
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

# ::mta::milter::names --
#	Just the event names of log lines (for sequence checks).

proc ::mta::milter::names {lines} {
    return [lmap line $lines {lindex $line 0}]
}

# ---------------------------------------------------------------------
# SMTP client
# ---------------------------------------------------------------------

namespace eval ::mta::smtp {
    variable timeout 30000
    variable wake
}

# ::mta::smtp::open --
#	Connect to an SMTP server and read its greeting.  Options:
#	-myaddr ADDR (source address, e.g. 127.0.0.2).  Returns
#	{chan greetingLines}.

proc ::mta::smtp::open {host port args} {
    set chan [socket {*}$args $host $port]
    fconfigure $chan -translation binary -blocking 0 -buffering full
    return [list $chan [reply $chan]]
}

# ::mta::smtp::readline --
#	Read one reply line into varName with the CRLF removed, waiting at
#	most timeout ms.  Returns 1, or 0 at EOF; an error on timeout.

proc ::mta::smtp::readline {chan varName} {
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
	chan event $chan readable [list set ::mta::smtp::wake($chan) 1]
	set id [after $left [list set ::mta::smtp::wake($chan) 2]]
	vwait ::mta::smtp::wake($chan)
	after cancel $id
	chan event $chan readable {}
	unset wake($chan)
    }
}

# ::mta::smtp::reply --
#	Read one (possibly multi-line) reply; a list of its lines.  If the
#	server closes the connection, the list ends with "<EOF>".

proc ::mta::smtp::reply {chan} {
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

# ::mta::smtp::write --
#	Send bytes (blocking, so large DATA goes out completely).

proc ::mta::smtp::write {chan bytes} {
    fconfigure $chan -blocking 1
    puts -nonewline $chan $bytes
    flush $chan
    fconfigure $chan -blocking 0
}

# ::mta::smtp::command --
#	Send one command line, return its reply lines.

proc ::mta::smtp::command {chan line} {
    if {[catch {write $chan $line\r\n}]} {
	return [list <EOF>]
    }
    return [reply $chan]
}

# ::mta::smtp::wire --
#	A message as it goes after DATA: LF or CRLF line ends become CRLF,
#	lines starting with "." are dot-stuffed, and ".\r\n" ends it.
#	encoding "binary" takes message as bytes already.

proc ::mta::smtp::wire {message {encoding utf-8}} {
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

# ::mta::smtp::data --
#	DATA, the message, the final dot.  Returns {dataReply dotReply};
#	dotReply is {} if DATA was refused.

proc ::mta::smtp::data {chan message {encoding utf-8}} {
    set r [command $chan DATA]
    if {![string match 354* [lindex $r 0]]} {
	return [list $r {}]
    }
    if {[catch {write $chan [wire $message $encoding]}]} {
	return [list $r [list <EOF>]]
    }
    return [list $r [reply $chan]]
}

proc ::mta::smtp::ok {reply} {
    return [regexp {^[23]} [lindex $reply 0]]
}

# ::mta::smtp::transaction --
#	MAIL, RCPT..., DATA on an open connection; stops early as an SMTP
#	client would (no RCPT after a failed MAIL, no DATA without an
#	accepted RCPT).  Returns a dict with keys mail, rcpt (one reply per
#	recipient), data, dot; keys for commands not sent are absent.
#	Recipients and sender are given with their ESMTP arguments, e.g.
#	"<a@b.test> NOTIFY=NEVER".

proc ::mta::smtp::transaction {chan from rcpts message {encoding utf-8}} {
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

# ::mta::smtp::send --
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

proc ::mta::smtp::send {host port args} {
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

# ::mta::smtp::queueid --
#	The queue id in a "250 2.0.0 Ok: queued as ID" (Postfix) or
#	"250 2.0.0 ID Message accepted for delivery" (Sendmail) reply.

proc ::mta::smtp::queueid {reply} {
    set line [lindex $reply end]
    if {[regexp {queued as ([0-9A-Za-z]+)} $line -> id]
	    || [regexp {^250 2\.0\.0 ([0-9A-Za-z]+) Message accepted} \
		    $line -> id]} {
	return $id
    }
    return ""
}

# ::mta::smtp::message --
#	A simple message (no Date or Message-ID, so that delivered copies
#	can be compared exactly).  Options: -subject, -from, -to, -headers
#	(list of name value), -body (text; LF line ends are fine).

proc ::mta::smtp::message {args} {
    set o [dict merge {-subject "test message" -from sender@client.tclmilter.test
	-to rcpt@dest.tclmilter.test -headers {} -body "Hello.\n"} $args]
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

namespace eval ::mta::sink {}

# ::mta::sink::start --
#	Run smtp-sink on 127.0.0.1:port, dumping every message to its own
#	file in dir.  Returns the pid.

proc ::mta::sink::start {dir port} {
    file mkdir $dir/msgs
    file attributes $dir/msgs -owner postfix
    set pid [::mta::spawn $dir/sink.out /usr/sbin/smtp-sink -u postfix \
	    -d $dir/msgs/%H%M%S. 127.0.0.1:$port 64]
    ::mta::writeFile $dir/sink.pid $pid
    if {![::mta::waitUntil {[::mta::listening $port]
	    || ![::mta::alive $pid]} 10000] || ![::mta::alive $pid]} {
	error "smtp-sink did not start: [::mta::readFile $dir/sink.out]"
    }
    return $pid
}

# ::mta::sink::files --
#	Captured message files in dir, oldest first.

proc ::mta::sink::files {dir} {
    return [lsort [glob -nocomplain -types f $dir/msgs/*]]
}

# ::mta::sink::find --
#	The captured messages (parsed) whose text contains pattern (a
#	regexp, e.g. the MTA queue id in its Received: header).

proc ::mta::sink::find {dir pattern} {
    set out {}
    foreach file [files $dir] {
	set data [::mta::readFile $file]
	if {[regexp -- $pattern $data]} {
	    lappend out [parse $data]
	}
    }
    return $out
}

# ::mta::sink::parse --
#	A captured file -> dict:
#	    helo mail rcpts	the SMTP envelope smtp-sink received
#				(arguments of EHLO, MAIL, each RCPT)
#	    headers		list of {name value} as delivered, from the
#				MTA's Received: on (smtp-sink's own block is
#				removed); values keep folds as "\n" + WSP
#	    body		the body with LF line ends
#	All strings are the raw bytes (8-bit stays undecoded).

proc ::mta::sink::parse {data} {
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

# ::mta::sink::header --
#	Values of all headers called name (case-insensitive).

proc ::mta::sink::header {msg name} {
    set out {}
    foreach field [dict get $msg headers] {
	if {[string equal -nocase [lindex $field 0] $name]} {
	    lappend out [lindex $field 1]
	}
    }
    return $out
}

# ::mta::sink::fields --
#	"Name: value" for each header except Received: (MTA-dependent).

proc ::mta::sink::fields {msg} {
    set out {}
    foreach field [dict get $msg headers] {
	if {[lindex $field 0] ne "Received"} {
	    lappend out "[lindex $field 0]: [lindex $field 1]"
	}
    }
    return $out
}

# ::mta::sink::names --
#	Header names in order, without Received: (MTA-dependent).

proc ::mta::sink::names {msg} {
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

# ::mta::doMessage --
#	A message whose X-Milter-Do header holds commands (none if empty);
#	more options go to ::mta::smtp::message.

proc ::mta::doMessage {commands args} {
    set headers {}
    if {[dict exists $args -headers]} {
	set headers [dict get $args -headers]
	dict unset args -headers
    }
    if {$commands ne ""} {
	lappend headers X-Milter-Do $commands
    }
    return [::mta::smtp::message -headers $headers {*}$args]
}

# ::mta::session --
#	Send one message through ::mta::${mta}::send (options as for it)
#	and wait until milter m has seen the session end.  Returns the SMTP
#	result dict plus "events": the milter log lines of the session.

proc ::mta::session {mta m args} {
    ::mta::milter::quiesce $m
    set mark [::mta::milter::mark $m]
    set r [::mta::${mta}::send {*}$args]
    # A slow milter (sanitizer builds) may log after the MTA answered.
    ::mta::waitUntil {[::mta::milter::mark $m] > $mark} 5000
    ::mta::milter::quiesce $m
    dict set r events [::mta::milter::since $m $mark]
    return $r
}

# ::mta::diagnostics --
#	For an error message: the last warnings of the MTA's log (when the
#	harness can read it) and the end of the milter's own output, so that
#	a failure in CI, whose temporary directories are gone, can be read.

proc ::mta::diagnostics {mta m} {
    set out ""
    if {[info commands ::mta::${mta}::log] ne ""} {
	set lines [lsearch -all -inline -regexp \
		[split [::mta::${mta}::log] \n] {milter|warning|fatal|error}]
	append out "\n--- $mta log (milter/warning lines, last 12):\n" \
		[join [lrange $lines end-11 end] \n]
    }
    if {[dict exists $m out] && [file exists [dict get $m out]]} {
	set lines [split [string trimright \
		[::mta::readFile [dict get $m out] auto]] \n]
	append out "\n--- milter output (last 12 lines):\n" \
		[join [lrange $lines end-11 end] \n]
    }
    return $out
}

# ::mta::deliver --
#	session, then the one copy smtp-sink received (parsed), with the
#	session's "events" and SMTP "result" added.

proc ::mta::deliver {mta m args} {
    set r [session $mta $m {*}$args]
    if {![dict exists $r queueid]} {
	error "not accepted: [dict remove $r events][diagnostics $mta $m]"
    }
    set msgs [::mta::${mta}::delivered [dict get $r queueid]]
    if {[llength $msgs] != 1} {
	error "[llength $msgs] copies delivered"
    }
    set msg [lindex $msgs 0]
    dict set msg events [dict get $r events]
    dict set msg result $r
    return $msg
}

# ::mta::replies --
#	The SMTP replies of a session result, for exact comparison:
#	before (replies to -before commands), mail, each rcpt, data and dot
#	(only those that were sent).

proc ::mta::replies {r} {
    set out {}
    foreach key {before mail rcpt data dot} {
	if {[dict exists $r $key]} {
	    lappend out $key [dict get $r $key]
	}
    }
    return $out
}

# ::mta::eventNames --
#	The event names of a session result or delivered message.

proc ::mta::eventNames {r} {
    return [::mta::milter::names [dict get $r events]]
}

::mta::cleanupStale
source [file join $::mta::here postfix.tcl]
source [file join $::mta::here sendmail.tcl]
