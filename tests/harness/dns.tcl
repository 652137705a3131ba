# dns.tcl --
#
#	::tm::dns, a small DNS server over TCP on 127.0.0.1 for the DNSBL
#	examples (see ../harness.tcl): it answers A queries from a table of
#	records, NXDOMAIN for any other name, each after the record's
#	delay, and records the names asked and answered.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

namespace eval ::tm::dns {
    variable server {}		;# listening channel
    variable port {}		;# its port
    variable records {}		;# name -> dict (rcode, ttl, a, delay)
    variable queries {}		;# names asked, in order
    variable answered {}	;# names answered, in order
    variable buf		;# channel -> bytes not yet parsed
    array set buf {}
}

# ::tm::dns::start --
#
#	Starts serving.  'records' is a dict: for each name a dict with
#	any of rcode (default 0), ttl (default 300), a (a list of IPv4
#	addresses) and delay (milliseconds before the answer).
#
# Results:
#	The port.
#
# Side effects:
#	Listens; forgets the names asked and answered before.

proc ::tm::dns::start {records} {
    variable server
    variable port
    variable queries {}
    variable answered {}
    set [namespace current]::records $records
    set server [socket -server [namespace current]::Accept \
	    -myaddr 127.0.0.1 0]
    set port [lindex [chan configure $server -sockname] 2]
    return $port
}

# ::tm::dns::stop --
#
#	Stops serving.
#
# Results:
#	None.
#
# Side effects:
#	Closes the listener and every connection.

proc ::tm::dns::stop {} {
    variable server
    variable buf
    catch {close $server}
    set server {}
    foreach chan [array names buf] {
	catch {close $chan}
    }
    array unset buf
    return
}

# ::tm::dns::Accept, Readable --
#
#	A new connection; a query arriving (a 16-bit length, then the DNS
#	message).
#
# Results:
#	None.
#
# Side effects:
#	Answer each complete query; close at EOF.

proc ::tm::dns::Accept {chan host port} {
    variable buf
    chan configure $chan -blocking 0 -translation binary -buffering none
    set buf($chan) {}
    chan event $chan readable [list [namespace current]::Readable $chan]
}

proc ::tm::dns::Readable {chan} {
    variable buf
    if {[catch {read $chan} data] || [eof $chan]} {
	catch {close $chan}
	unset -nocomplain buf($chan)
	return
    }
    append buf($chan) $data
    while {[binary scan $buf($chan) Su len] == 1
	    && [string length $buf($chan)] >= $len + 2} {
	set query [string range $buf($chan) 2 [expr {$len + 1}]]
	set buf($chan) [string range $buf($chan) [expr {$len + 2}] end]
	Answer $chan $query
    }
}

# ::tm::dns::Answer --
#
#	Parses the question of a query and answers it from the records,
#	after the record's delay.
#
# Results:
#	None.
#
# Side effects:
#	Records the name; schedules the reply.

proc ::tm::dns::Answer {chan query} {
    variable records
    variable queries
    binary scan $query Su id
    set pos 12
    set labels {}
    while {[binary scan $query @${pos}cu len] == 1 && $len > 0} {
	lappend labels [string range $query [expr {$pos + 1}] \
		[expr {$pos + $len}]]
	incr pos [expr {$len + 1}]
    }
    set name [string tolower [join $labels .]]
    lappend queries $name
    set question [string range $query 12 [expr {$pos + 4}]]
    set entry [dict create rcode 3 ttl 300 a {} delay 0]
    if {[dict exists $records $name]} {
	set entry [dict merge [dict create rcode 0 ttl 300 a {} delay 0] \
		[dict get $records $name]]
    }
    set reply [binary format SSSSSS $id \
	    [expr {0x8180 | [dict get $entry rcode]}] 1 \
	    [llength [dict get $entry a]] 0 0]$question
    foreach address [dict get $entry a] {
	append reply [binary format SSSIS 0xc00c 1 1 [dict get $entry ttl] 4]
	append reply [binary format c4 [split $address .]]
    }
    after [dict get $entry delay] [list [namespace current]::Send $chan \
	    $name [binary format S [string length $reply]]$reply]
}

# ::tm::dns::Send --
#
#	Sends a reply.
#
# Results:
#	None.
#
# Side effects:
#	Records the name as answered; writes to the connection.

proc ::tm::dns::Send {chan name bytes} {
    variable answered
    lappend answered $name
    catch {
	puts -nonewline $chan $bytes
	flush $chan
    }
}
