# miltertestReplay.tcl --
#
#	Part of the package milter::test (see miltertest.tcl, which sources
#	this file): capture files (milter configure -capture, format in
#	tclmilter(n), section CAPTURE).  [milter::test::replay] plays the
#	MTA side of a captured session against a milter and returns the
#	milter's verdicts; [milter::test::captured] reads the verdicts the
#	capture itself recorded, in the same form; [milter::test::diff]
#	compares two such lists.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::milter::test {
    namespace export replay captured diff

    # The MTA commands of a capture that the milter answers, and the
    # replies that end the answer to one of them.
    variable replayAnswered {
	connect helo envfrom envrcpt data header eoh body eom unknown
    }
    variable replayFinals {
	continue accept reject tempfail discard replycode skip shutdown
	connfail
    }
}

# ::milter::test::ReadCapture --
#
#	Read and check a capture file.
#
# Arguments:
#	file	the file name
#
# Results:
#	A list {header lines}: the header dict (start, version, connection,
#	listen, ...) and the other lines, each a list.

proc ::milter::test::ReadCapture {file} {
    if {[catch {::open $file r} chan]} {
	Throw {CAPTURE OPEN} "cannot read capture \"$file\": $chan"
    }
    try {
	chan configure $chan -encoding iso8859-1 -translation lf
	set text [read $chan]
    } finally {
	close $chan
    }
    set lines [split [string trimright $text \n] \n]
    set first [lindex $lines 0]
    if {[catch {llength $first}] || [lindex $first 0] ne "tclmilter-capture"
	    || [lindex $first 1] ne "1"
	    || [llength $first] % 2 != 0} {
	Throw {CAPTURE FORMAT} "\"$file\" is not a capture file of format\
		tclmilter-capture 1"
    }
    set result {}
    set n 1
    foreach line [lrange $lines 1 end] {
	incr n
	if {[catch {llength $line} len] || $len < 2
		|| ![string is entier -strict [lindex $line 0]]} {
	    Throw {CAPTURE FORMAT} "bad line $n in capture \"$file\""
	}
	lappend result $line
    }
    return [list [lrange $first 2 end] $result]
}

# ::milter::test::Verdict --
#
#	One element of a verdict list, keys in a fixed order.
#
# Arguments:
#	message	the number of the message (envfrom commands so far)
#	stage	the command answered
#	action	the action word of the answer
#	reply	the reply text (replycode)
#	mods	the modifications, in the form of the session results
#
# Results:
#	A dict: message, stage, action, then reply and modifications when
#	not empty.

proc ::milter::test::Verdict {message stage action reply mods} {
    set v [dict create message $message stage $stage action $action]
    if {$reply ne ""} {
	dict set v reply $reply
    }
    if {[llength $mods]} {
	set list {}
	foreach mod $mods {
	    # A replacement body is compared by its length: captures keep
	    # only the first -capturebody bytes of it.
	    if {[lindex $mod 0] eq "replacebody"} {
		set mod [list replacebody [string length [lindex $mod 1]]]
	    }
	    lappend list $mod
	}
	dict set v modifications $list
    }
    return $v
}

# ::milter::test::Keep --
#
#	Whether an answer goes into a verdict list: every answer but
#	"continue" (and the client's disabled, skipped and noreply), and
#	every answer to eom.
#
# Arguments:
#	stage	the command answered
#	action	the action word
#
# Results:
#	Boolean.

proc ::milter::test::Keep {stage action} {
    return [expr {$stage eq "eom"
	    || $action ni {continue disabled skipped noreply}}]
}

# ::milter::test::CountMessage --
#
#	Message numbering in a verdict list: a message begins with the first
#	transaction command (envfrom, envrcpt, data, header, eoh, body, eom,
#	or macros for one of them) after the start, an eom or an abort.  An
#	MTA does not send what the milter did not ask for, so envfrom alone
#	cannot tell.
#
# Arguments:
#	stVar	name of the caller's variable holding {number inMessage}
#	kind	the kind of an MTA line
#	args	its arguments
#
# Results:
#	None.

proc ::milter::test::CountMessage {stVar kind args} {
    upvar 1 $stVar st
    lassign $st number inMessage
    set stage [expr {$kind eq "macros" ? [lindex $args 0] : $kind}]
    if {$stage in {envfrom envrcpt data header eoh body eom}
	    && !$inMessage} {
	incr number
	set inMessage 1
    }
    if {$kind in {eom abort}} {
	set inMessage 0
    }
    set st [list $number $inMessage]
}

# ::milter::test::captured --
#
#	The verdicts a capture file recorded: the milter's answers as the
#	MTA got them, in the form replay returns.
#
# Arguments:
#	file	the capture file
#
# Results:
#	A verdict list (see replay).

proc ::milter::test::captured {file} {
    variable replayAnswered
    variable replayFinals
    lassign [ReadCapture $file] header lines
    set count {0 0}
    set stage {}
    set mods {}
    set body -1
    set result {}
    foreach line $lines {
	set args [lassign $line ms side kind]
	if {$side eq "mta"} {
	    CountMessage count $kind {*}$args
	    set message [lindex $count 0]
	    if {$kind in $replayAnswered} {
		set stage $kind
	    }
	    continue
	}
	if {$side ne "milter" || $stage eq ""} {
	    continue
	}
	if {$kind in $replayFinals} {
	    if {[Keep $stage $kind]} {
		lappend result [Verdict $message $stage $kind \
			[lindex $args 0] $mods]
	    }
	    set mods {}
	    set body -1
	    continue
	}
	switch -- $kind {
	    addheader - insheader - chgheader - addrcpt - delrcpt -
	    quarantine {
		lappend mods [list $kind {*}$args]
	    }
	    chgfrom - addrcpt_par {
		lappend mods [list $kind [lindex $args 0] [lindex $args 1]]
	    }
	    replacebody {
		# Chunks of one replacement, as the client joins them; the
		# length is that of the whole chunk, kept or not.
		if {$body < 0} {
		    set body [llength $mods]
		    lappend mods [list replacebody {}]
		}
		lset mods $body 1 [string repeat x [expr {[string length \
			[lindex $mods $body 1]] + [lindex $args 0]}]]
	    }
	}
    }
    return $result
}

# ::milter::test::ReplayWait --
#
#	With -speed, wait (running the event loop) until a captured line's
#	time, divided by the speed, has passed since the replay began.
#
# Arguments:
#	start	[clock milliseconds] when the replay began
#	ms	the line's time
#	speed	the speed factor; 0 for no waiting
#
# Results:
#	None.

proc ::milter::test::ReplayWait {start ms speed} {
    if {$speed <= 0} {
	return
    }
    set left [expr {entier($start + $ms / double($speed))
	    - [clock milliseconds]}]
    if {$left > 0} {
	set var [namespace current]::replayWake
	set timer [after $left [list set $var 1]]
	vwait $var
	after cancel $timer
    }
}

# ::milter::test::replay --
#
#	Play the MTA side of a captured session against a milter: the same
#	option negotiation, macros and commands, in order; returns the
#	milter's verdicts.
#
# Arguments:
#	file	the capture file
#	args	-connection spec (default: the address the capturing
#		milter listened on), -speed factor (0, the default: no
#		pauses; 1: the captured timing; 2: twice as fast ...),
#		-timeout ms (for each answer; default 5000)
#
# Results:
#	A list with one dict per answer kept (see Keep): message (the
#	number of envfrom commands so far), stage, action, reply when the
#	action is replycode, modifications when there are any (a
#	replacement body as {replacebody LENGTH}).  An error on the way
#	(the milter closed the connection, broke the protocol or did not
#	answer) ends the list with action "error" and the message as the
#	reply.

proc ::milter::test::replay {file args} {
    variable replayAnswered
    CheckPairs $args "milter::test::replay file ?-option value ...?"
    lassign [ReadCapture $file] header lines
    set spec [expr {[dict exists $header listen]
	    ? [dict get $header listen] : ""}]
    set speed 0
    set timeout 5000
    foreach {option value} $args {
	set option [tcl::prefix match -message option {-connection -speed
		-timeout} $option]
	switch -- $option {
	    -connection {
		set spec $value
	    }
	    -speed {
		if {![string is double -strict $value] || $value < 0} {
		    Throw USAGE "bad value \"$value\" for -speed: must be a\
			    non-negative number"
		}
		set speed $value
	    }
	    -timeout {
		set timeout [CheckInteger $option $value 1 0x7fffffff]
	    }
	}
    }
    if {$spec eq ""} {
	Throw USAGE "capture \"$file\" names no connection: give\
		-connection"
    }
    set start [clock milliseconds]
    set s {}
    set count {0 0}
    set message 0
    set stage {}
    set result {}
    try {
	foreach line $lines {
	    set args [lassign $line ms side kind]
	    if {$side ne "mta"} {
		continue
	    }
	    ReplayWait $start $ms $speed
	    if {$kind eq "optneg"} {
		lassign $args version actions protocol
		if {$s ne ""} {
		    $s close
		}
		set s [open $spec -version $version -actions $actions \
			-protocol $protocol -timeout $timeout \
			-encoding iso8859-1]
		continue
	    }
	    if {$s eq ""} {
		Throw {CAPTURE FORMAT} "capture \"$file\": \"$kind\" before\
			the option negotiation"
	    }
	    CountMessage count $kind {*}$args
	    set message [lindex $count 0]
	    if {$kind in $replayAnswered} {
		set stage $kind
	    }
	    switch -- $kind {
		macros {
		    lassign $args macroStage
		    $s macros $macroStage [lrange $args 1 end]
		    continue
		}
		connect - helo - envfrom - envrcpt - data - header - eoh -
		unknown {
		    set r [$s $kind {*}$args]
		}
		body {
		    set r [$s body [lindex $args 1]]
		}
		eom {
		    set r [$s eom [lindex $args 1]]
		}
		abort - quitnc {
		    $s $kind
		    continue
		}
		quit {
		    $s quit
		    set s {}
		    break
		}
		raw {
		    $s send {*}$args
		    continue
		}
		default {
		    continue
		}
	    }
	    set action [dict get $r action]
	    if {[Keep $kind $action]} {
		lappend result [Verdict $message $kind $action \
			[dict get $r reply] [dict get $r modifications]]
	    }
	}
    } trap {MILTERTEST} {msg opts} {
	set class [lindex [dict get $opts -errorcode] 1]
	if {$class in {USAGE CAPTURE CONNECT}} {
	    if {$s ne "" && [info commands $s] ne ""} {
		$s close
	    }
	    return -code error -errorcode [dict get $opts -errorcode] $msg
	}
	lappend result [dict create message $message stage $stage \
		action error reply $msg]
    } finally {
	if {$s ne "" && [info commands $s] ne ""} {
	    $s close
	}
    }
    return $result
}

# ::milter::test::diff --
#
#	Compare two verdict lists (from replay or captured), element by
#	element.
#
# Arguments:
#	a b	the lists
#
# Results:
#	A list with one dict per position where they differ: index (from
#	0), a and b (the two elements; empty where one list is shorter).
#	Empty when the lists are the same.

proc ::milter::test::diff {a b} {
    set result {}
    set n [expr {max([llength $a], [llength $b])}]
    for {set i 0} {$i < $n} {incr i} {
	set x [lindex $a $i]
	set y [lindex $b $i]
	if {[llength $x] != [llength $y] || [catch {
	    dict for {key value} $x {
		if {![dict exists $y $key] || [dict get $y $key] ne $value} {
		    error different
		}
	    }
	}]} {
	    lappend result [dict create index $i a $x b $y]
	}
    }
    return $result
}
