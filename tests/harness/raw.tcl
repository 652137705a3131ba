# raw.tcl --
#
#	::tm::raw, a byte-level MTA (see ../harness.tcl) that can send
#	anything, including garbage before option negotiation, and reads
#	the milter's packets.  It waits with the event loop, so a milter in
#	the same thread keeps running.  ::tm::pkt frames one packet.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::tm {
    namespace export pkt
}

namespace eval ::tm::raw {
    variable buf		;# chan -> bytes not yet parsed
    variable eof		;# chan -> 1 once the milter closed
    variable wake 0
    array set buf {}
    array set eof {}
}

# ::tm::raw::open --
#
#	Connects to inet:PORT@HOST or unix:PATH (through milter::test's
#	relay for unix sockets).
#
# Results:
#	The channel, non-blocking, binary; closeAll closes it.
#
# Side effects:
#	Connects; the packets that arrive are buffered by Readable.

proc ::tm::raw::open {addr} {
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
    chan event $chan readable [list ::tm::raw::Readable $chan]
    return $chan
}

# ::tm::raw::Readable --
#
#	Readable handler: buffers what the milter sent, notes EOF.
#
# Results:
#	None.
#
# Side effects:
#	Appends to buf; wakes packet.

proc ::tm::raw::Readable {chan} {
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

# ::tm::pkt --
#
#	Frames one packet: length (counting the command byte), command,
#	data.
#
# Results:
#	The bytes.
#
# Side effects:
#	None.

proc ::tm::pkt {cmd {data {}}} {
    return [binary format I [expr {[string length $data] + 1}]]$cmd$data
}

# ::tm::raw::send, sendraw --
#
#	Send one packet with a correct length; send any bytes.
#
# Results:
#	None.
#
# Side effects:
#	Writes to the channel.

proc ::tm::raw::send {chan cmd {data {}}} {
    sendraw $chan [::tm::pkt $cmd $data]
}

proc ::tm::raw::sendraw {chan bytes} {
    puts -nonewline $chan $bytes
    flush $chan
}

# ::tm::raw::packet --
#
#	Waits at most 'ms' for the next packet.
#
# Results:
#	{cmd data}; or eof once the milter has closed and nothing is left,
#	{partial bytes} when it closed in the middle of a packet, or
#	timeout.
#
# Side effects:
#	Services events while waiting; consumes the packet.

proc ::tm::raw::packet {chan {ms 5000}} {
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
	set id [after $left [list set ::tm::raw::wake 0]]
	vwait ::tm::raw::wake
	after cancel $id
    }
}

# ::tm::raw::reply --
#
#	The command character of the next packet (see packet).
#
# Results:
#	A character, or eof, partial or timeout.
#
# Side effects:
#	As packet.

proc ::tm::raw::reply {chan {ms 5000}} {
    return [lindex [packet $chan $ms] 0]
}

# ::tm::raw::drain --
#
#	Reads every packet until the milter closes.
#
# Results:
#	Their command characters, then eof; or ending with timeout when it
#	has not closed after 'ms', or partial.
#
# Side effects:
#	As packet.

proc ::tm::raw::drain {chan {ms 5000}} {
    set result {}
    while 1 {
	set cmd [reply $chan $ms]
	lappend result $cmd
	if {$cmd in {eof timeout partial}} {
	    return $result
	}
    }
}

# ::tm::raw::optneg --
#
#	Option negotiation with the given version, actions and protocol
#	bits.
#
# Results:
#	The reply's command character.
#
# Side effects:
#	Talks to the milter.

proc ::tm::raw::optneg {chan {version 6} {actions 0x1ff}
	{protocol 0x1fffff}} {
    send $chan O [binary format III $version $actions $protocol]
    return [reply $chan]
}

# ::tm::raw::session --
#
#	Opens, negotiates with every protocol bit offered (so header and end
#	of header replies are deferred) and sends the commands of a session
#	up to and including the stage 'upto' (optneg, connect, helo,
#	envfrom, envrcpt, data, header, eoh, body), checking each reply.
#
# Results:
#	The channel.  An unexpected reply is an error.
#
# Side effects:
#	Connects and talks to the milter.

proc ::tm::raw::session {addr {upto helo}} {
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

# ::tm::raw::message --
#
#	Sends a whole message (MAIL to EOM) on a negotiated raw connection
#	that has said HELO.
#
# Results:
#	The reply characters of the commands that have replies (header and
#	end of header have none, see session).
#
# Side effects:
#	Talks to the milter.

proc ::tm::raw::message {chan} {
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

# ::tm::raw::halfclose, close, closeAll --
#
#	Send EOF (shut down the writing side) but keep reading; close one
#	channel; close every channel still open.
#
# Results:
#	None.
#
# Side effects:
#	Close channels, forget their buffers.

proc ::tm::raw::halfclose {chan} {
    ::close $chan write
}

proc ::tm::raw::close {chan} {
    variable buf
    variable eof
    catch {chan event $chan readable {}}
    catch {::close $chan}
    unset -nocomplain buf($chan) eof($chan)
}

proc ::tm::raw::closeAll {} {
    variable buf
    foreach chan [array names buf] {
	close $chan
    }
}

