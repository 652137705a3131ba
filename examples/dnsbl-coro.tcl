#!/usr/bin/env tclsh
# dnsbl-coro.tcl --
#
#	Refuses SMTP clients listed in a DNS blocklist (DNSBL), with
#	coroutine callbacks (milter configure -coroutines 1): the connect
#	callback sends its DNS query, then yields until the answer comes,
#	and meanwhile the milter serves every other connection.  A blocking
#	lookup would hold up all of them for as long as the DNS takes.
#
#	A client at a.b.c.d is listed when d.c.b.a.ZONE has an A record in
#	127.0.0.0/8; it is refused at connect with
#	"554 5.7.1 Client host [a.b.c.d] blocked using ZONE".  The answers
#	are remembered for -cachetime seconds, so a client that opens many
#	connections costs one query.  When the DNS does not answer in time
#	or fails, the client is let through (the MTA has other defences);
#	IPv6 and unix-domain clients are not looked up.
#
#	The queries go through tcllib's dns package: over UDP when the udp
#	package (tcludp) is there, else over TCP.
#
#	Usage:
#	    tclsh dnsbl-coro.tcl ?-connection? ?SPEC? ?option value ...?
#
#	SPEC defaults to unix:/var/run/dnsbl.sock.  Options:
#	    -zone ZONE		the blocklist (default zen.spamhaus.org)
#	    -nameserver HOST	the resolver to ask (default 127.0.0.1)
#	    -port PORT		its port (default 53)
#	    -timeout MS		how long to wait for an answer (default 3000)
#	    -cachetime SECONDS	how long an answer is remembered (default 600)
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1
package require dns

namespace eval dnsbl {
    variable opts [dict create -zone zen.spamhaus.org \
	    -nameserver 127.0.0.1 -port 53 -timeout 3000 -cachetime 600 \
	    -protocol [expr {[catch {package require udp}] ? "tcp" : "udp"}]]
    variable cache		;# address -> {expiry answer}
    array set cache {}
}

set spec unix:/var/run/dnsbl.sock
if {[lindex $argv 0] eq "-connection"} {
    set argv [lrange $argv 1 end]
}
if {[llength $argv] % 2 == 1} {
    set argv [lassign $argv spec]
}
foreach {option value} $argv {
    if {![dict exists $dnsbl::opts $option]} {
	puts stderr "usage: [file tail [info script]] ?-connection? ?spec?\
		?-zone zone? ?-nameserver host? ?-port port? ?-timeout ms?\
		?-cachetime seconds? ?-protocol udp|tcp?"
	exit 2
    }
    dict set dnsbl::opts $option $value
}

dns::configure -nameserver [dict get $dnsbl::opts -nameserver] \
	-port [dict get $dnsbl::opts -port] \
	-protocol [dict get $dnsbl::opts -protocol]

# dnsbl::query name --
#	Called in a callback's coroutine: asks the DNS for the A records of
#	name and yields until the answer comes.  Returns "error" when there
#	is none in time, else the list of addresses (empty: not listed).

proc dnsbl::query {name} {
    variable opts
    set coro [info coroutine]
    # The answer resumes the coroutine from the event loop, never from
    # inside dns::resolve itself (which may report an error at once).
    set token [dns::resolve $name -type A \
	    -timeout [dict get $opts -timeout] \
	    -command [list apply {{coro token} {
		after 0 [list $coro $token]
	    }} $coro]]
    while {[yield] ne $token} {
	# Resumed by something else: keep waiting for the answer.
    }
    switch -- [dns::status $token] {
	ok {
	    set answer [dns::address $token]
	}
	error {
	    # NXDOMAIN ("Name Error") is the usual "not listed"; anything
	    # else is a failure.
	    set answer [expr {[string match "Name Error*" \
		    [dns::error $token]] ? {} : "error"}]
	}
	default {
	    set answer error
	}
    }
    dns::cleanup $token
    return $answer
}

# dnsbl::listed address --
#	The blocklist's answer for an IPv4 address, from the cache or the
#	DNS: 1 listed, 0 not listed, "error" unknown.

proc dnsbl::listed {address} {
    variable opts
    variable cache
    set now [clock seconds]
    if {[info exists cache($address)]
	    && [lindex $cache($address) 0] > $now} {
	return [lindex $cache($address) 1]
    }
    set reversed [join [lreverse [split $address .]] .]
    set answer [query $reversed.[dict get $opts -zone]]
    if {$answer eq "error"} {
	return error
    }
    set listed 0
    foreach a $answer {
	if {[string match 127.* $a]} {
	    set listed 1
	}
    }
    set cache($address) [list [expr {$now + [dict get $opts -cachetime]}] \
	    $listed]
    return $listed
}

proc dnsbl::connect {ctx hostname addrInfo} {
    variable opts
    if {[dict get $addrInfo family] ne "inet"} {
	return SMFIS_CONTINUE
    }
    set address [dict get $addrInfo address]
    switch -- [listed $address] {
	1 {
	    $ctx setreply 554 5.7.1 "Client host \[$address\] blocked using\
		    [dict get $opts -zone]"
	    puts "DNSBL: $address listed"
	    flush stdout
	    return SMFIS_REJECT
	}
	error {
	    puts "DNSBL: $address not looked up (no answer)"
	    flush stdout
	}
    }
    return SMFIS_CONTINUE
}

milter configure -name DNSBL -connection $spec -coroutines 1
milter register connect dnsbl::connect
milter main
