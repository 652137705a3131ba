# demo.tcl --
#
#	Runs examples/blacklist.tcl on a private unix socket and drives two
#	messages through it with the milter::test client: one from a clean
#	sender and one from a blacklisted sender.  Prints both verdicts and
#	stops the milter.  Exits 0 when the clean message continues (or is
#	accepted) and the blacklisted one is rejected, 1 otherwise.
#
#	Run it through "make demo" (or scripts/demo.sh), which sets TCLLIBPATH
#	so that the build-tree TclMilter and milter::test are found.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require Tcl 8.6

namespace eval ::demo {
    variable srcdir [file dirname [file dirname [file normalize [info script]]]]
    variable example [file join $srcdir examples blacklist.tcl]
    variable chan {}
    variable output {}
    variable tmpdir {}
}

# demo::Fail --
#
#	Reports a failure, shows what the milter printed, cleans up and exits.
#
# Results:
#	Does not return.
#
# Side effects:
#	Stops the milter, removes the temporary directory, exits with 1.

proc ::demo::Fail {message} {
    variable output
    puts stderr "demo: $message"
    Stop
    if {[string trim $output] ne ""} {
	puts stderr "--- output of examples/blacklist.tcl ---"
	puts stderr [string trimright $output]
	puts stderr "---"
    }
    exit 1
}

# demo::Collect --
#
#	Readable handler for the milter's stdout/stderr pipe.
#
# Results:
#	None.
#
# Side effects:
#	Appends to demo::output; notes the end of the pipe.

proc ::demo::Collect {} {
    variable chan
    variable output
    append output [read $chan]
    if {[eof $chan]} {
	fileevent $chan readable {}
	set ::demo::eof 1
    }
}

# demo::Stop --
#
#	Stops the milter child (SIGTERM, by its own pid) and removes the
#	temporary directory.
#
# Results:
#	None.
#
# Side effects:
#	Kills and reaps the child process.

proc ::demo::Stop {} {
    variable chan
    variable tmpdir
    if {$chan ne ""} {
	foreach pid [pid $chan] {
	    catch {exec kill -TERM $pid}
	}
	# Gather its last words for up to 3 s.  The channel stays
	# non-blocking, so close does not wait for the process: Tcl reaps it
	# in the background.
	if {!$::demo::eof} {
	    set timer [after 3000 {set ::demo::eof timeout}]
	    vwait ::demo::eof
	    after cancel $timer
	}
	catch {close $chan}
	set chan {}
    }
    if {$tmpdir ne ""} {
	file delete -force $tmpdir
	set tmpdir {}
    }
}

# demo::Verdict --
#
#	Sends one message and returns its verdict.
#
# Results:
#	A list {action reply}.  A custom SMTP reply (the milter called
#	setreply, so the MTA got SMFIR_REPLYCODE) counts as reject for a 5xx
#	code and tempfail for a 4xx code; reply is its text, or empty.
#
# Side effects:
#	Talks to the milter.

proc ::demo::Verdict {session from rcpt subject} {
    set text [join [list \
	    "From: $from" \
	    "To: $rcpt" \
	    "Subject: $subject" \
	    "Message-ID: <[clock milliseconds].[pid]@demo.example.org>" \
	    "" \
	    "This message was sent by the TclMilter demo." \
	    ""] \r\n]
    set result [$session message -from <$from> -rcpt [list <$rcpt>] \
	    -text $text]
    set action [dict get $result action]
    set reply {}
    if {[dict exists $result reply]} {
	set reply [string trim [dict get $result reply]]
    }
    if {$action eq "replycode"} {
	switch -glob -- $reply {
	    5* {set action reject}
	    4* {set action tempfail}
	}
    }
    return [list $action $reply]
}

proc ::demo::Main {} {
    variable example
    variable chan
    variable tmpdir

    if {![file exists $example]} {
	Fail "$example does not exist yet"
    }
    if {[catch {package require milter::test} msg]} {
	Fail "cannot load the milter::test client: $msg"
    }

    # A short private directory: unix socket paths are limited to 107
    # bytes.
    set tmpdir [file join /tmp tclmilter-demo-[pid]]
    file delete -force $tmpdir
    file mkdir $tmpdir
    file attributes $tmpdir -permissions 0700
    set sock [file join $tmpdir bl.sock]
    set spec unix:$sock

    puts "starting examples/blacklist.tcl on $spec"
    set chan [open |[list [info nameofexecutable] $example \
	    -connection $spec 2>@1] r]
    fconfigure $chan -blocking 0 -translation auto
    set ::demo::eof 0
    fileevent $chan readable ::demo::Collect

    # Wait up to 10 s for the milter to listen.
    set session {}
    set deadline [expr {[clock milliseconds] + 10000}]
    while {$session eq ""} {
	if {$::demo::eof} {
	    Fail "examples/blacklist.tcl exited before listening"
	}
	if {[file exists $sock]
		&& ![catch {milter::test::open $spec} s]} {
	    set session $s
	    break
	}
	if {[clock milliseconds] > $deadline} {
	    Fail "the milter did not start listening on $sock within 10 s"
	}
	after 100 {set ::demo::tick 1}
	vwait ::demo::tick
    }

    set ok 1
    set cases {
	clean       alice@example.org      {Lunch on Friday?}   {continue accept}
	blacklisted spammer@spamdomain.com {Cheap watches}      {reject}
    }
    foreach {kind from subject expected} $cases {
	if {[catch {Verdict $session $from bob@example.net $subject} v]} {
	    Fail "sending the $kind message failed: $v"
	}
	lassign $v action reply
	set label [expr {$kind eq "clean"
		? "clean message from" : "blacklisted sender"}]
	if {$reply ne ""} {
	    puts "$label $from: $action ($reply)"
	} else {
	    puts "$label $from: $action"
	}
	if {$action ni $expected} {
	    puts stderr "demo: expected [join $expected { or }] for $from"
	    set ok 0
	}
    }

    catch {$session quit}
    Stop
    puts "milter stopped"
    return $ok
}

exit [expr {[::demo::Main] ? 0 : 1}]
