#!/usr/bin/env tclsh
# dnsbl-workers.tcl --
#
#	A DNS blocklist (DNSBL) milter whose callbacks run in worker
#	interpreters (milter configure -workers).  When a client connects,
#	its IPv4 address a.b.c.d is looked up as d.c.b.a.ZONE: an A record
#	(127.0.0.x) means listed.
#
#	  - a listed client is refused: 554 5.7.1 at connect (Postfix gives
#	    the reply at the next command, Sendmail at once);
#	  - every message of any other client gets the header
#	    "X-DNSBL: ZONE; client=ADDRESS; result=pass" (or "result=none"
#	    for clients without an IPv4 address, "result=unknown (REASON)"
#	    when the lookup failed: the filter fails open).
#
#	The lookup blocks the callback until the answer comes.  That is
#	what the workers are for: a slow answer holds up only the worker
#	that waits for it, while the other workers serve other connections.
#	Answers are cached for their TTL (at most -cachettl seconds) in a
#	tsv array of the Thread package, shared by all workers, so a client
#	that connects again is not looked up again whichever worker serves
#	it; the counters of the statistics line live in tsv as well.
#
#	Queries go over TCP (RFC 7766), because Tcl has no UDP socket of its
#	own; any recursive resolver answers them, for example a local
#	unbound or the first nameserver of /etc/resolv.conf (the default).
#
#	Usage:
#	    tclsh dnsbl-workers.tcl ?SPEC? ?option value ...?
#
#	SPEC defaults to unix:/var/run/dnsbl.sock.  Options:
#	    -zone ZONE		the DNSBL zone (default zen.spamhaus.org)
#	    -nameserver HOST?:PORT?
#				the resolver (default: /etc/resolv.conf)
#	    -workers N		worker interpreters (default 4)
#	    -timeout SECONDS	for one lookup (default 5)
#	    -cachettl SECONDS	longest time an answer is cached (default
#				300; 0 caches nothing)
#	    -stats SECONDS	how often to print the statistics line
#				(default 600; 0 never)
#
#	It prints "dnsbl: listed ADDRESS (A-RECORD)" for each refused client
#	and "dnsbl: lookups N cached N listed N failed N" every -stats
#	seconds.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1
package require Thread

# ----------------------------------------------------------------------
# Arguments (in the owner interpreter).
# ----------------------------------------------------------------------

# firstNameserver --
#
#	The first "nameserver" of /etc/resolv.conf, or 127.0.0.1.

proc firstNameserver {} {
    if {![catch {open /etc/resolv.conf} f]} {
	set text [read $f]
	close $f
	foreach line [split $text \n] {
	    if {[regexp {^\s*nameserver\s+(\S+)} $line -> address]} {
		return $address
	    }
	}
    }
    return 127.0.0.1
}

proc usage {} {
    puts stderr "usage: [file tail [info script]] ?spec? ?-zone zone?\
	    ?-nameserver host?:port?? ?-workers n? ?-timeout seconds?\
	    ?-cachettl seconds? ?-stats seconds?"
    exit 2
}

set spec unix:/var/run/dnsbl.sock
if {[llength $argv] % 2} {
    set argv [lassign $argv spec]
}
set options [dict create -zone zen.spamhaus.org -nameserver "" -workers 4 \
	-timeout 5 -cachettl 300 -stats 600]
foreach {option value} $argv {
    if {![dict exists $options $option]} {
	usage
    }
    dict set options $option $value
}
foreach option {-workers -timeout -cachettl -stats} {
    if {![string is integer -strict [dict get $options $option]]
	    || [dict get $options $option] < 0} {
	usage
    }
}
set zone [dict get $options -zone]
set nameserver [dict get $options -nameserver]
if {$nameserver eq ""} {
    set nameserver [firstNameserver]
}
# HOST, HOST:PORT, or [IPV6]:PORT.
if {![regexp {^\[([^]]+)\](?::(\d+))?$} $nameserver -> nsHost nsPort]
	&& ![regexp {^([^:]+)(?::(\d+))?$} $nameserver -> nsHost nsPort]} {
    set nsHost $nameserver
    set nsPort ""
}
if {$nsPort eq ""} {
    set nsPort 53
}

# ----------------------------------------------------------------------
# The workers' script: every worker interpreter evaluates it before it
# serves (-workerinit).  Only strings cross from the owner, substituted
# into it here.
# ----------------------------------------------------------------------

set workerScript {
    package require Thread

    namespace eval ::dnsbl {
	variable zone @ZONE@
	variable nsHost @NSHOST@
	variable nsPort @NSPORT@
	variable timeout @TIMEOUT@	;# milliseconds
	variable cacheTtl @CACHETTL@	;# seconds
    }

    # dnsbl::Query name --
    #
    #	Asks the resolver for the A records of a name over TCP, waiting
    #	for the answer (at most -timeout).  Polls a non-blocking socket
    #	rather than entering the event loop, so that nothing else runs
    #	in this worker meanwhile.
    #
    # Results:
    #	A list {ttl address ...}: the smallest TTL and the addresses;
    #	{60} for a name that does not exist or has no A record.  Raises
    #	an error (errorCode DNSBL ...) when there is no usable answer.

    proc ::dnsbl::Query {name} {
	variable nsHost
	variable nsPort
	variable timeout
	set deadline [expr {[clock milliseconds] + $timeout}]
	set id [expr {int(rand() * 65536)}]
	# Header: id, flags (RD), one question.  Then the question: the
	# labels, type A (1), class IN (1).
	set query [binary format SSSSSS $id 0x0100 1 0 0 0]
	foreach label [split [string trimright $name .] .] {
	    append query [binary format ca* [string length $label] $label]
	}
	append query [binary format cSS 0 1 1]
	set sock [socket -async $nsHost $nsPort]
	try {
	    fconfigure $sock -blocking 0 -translation binary
	    while {[fconfigure $sock -connecting]} {
		Wait $deadline
	    }
	    set error [fconfigure $sock -error]
	    if {$error ne ""} {
		throw {DNSBL CONNECT} "cannot reach $nsHost:$nsPort: $error"
	    }
	    puts -nonewline $sock \
		    [binary format S [string length $query]]$query
	    flush $sock
	    binary scan [Read $sock 2 $deadline] Su length
	    set reply [Read $sock $length $deadline]
	} finally {
	    close $sock
	}
	return [Parse $reply $id]
    }

    # dnsbl::Wait deadline, dnsbl::Read sock count deadline --
    #
    #	Sleep a little, or fail once the deadline has passed; read
    #	exactly count bytes.

    proc ::dnsbl::Wait {deadline} {
	if {[clock milliseconds] >= $deadline} {
	    throw {DNSBL TIMEOUT} "timeout"
	}
	after 5
    }

    proc ::dnsbl::Read {sock count deadline} {
	set data ""
	while {[string length $data] < $count} {
	    append data [read $sock [expr {$count - [string length $data]}]]
	    if {[string length $data] < $count} {
		if {[eof $sock]} {
		    throw {DNSBL EOF} "connection closed by $::dnsbl::nsHost"
		}
		Wait $deadline
	    }
	}
	return $data
    }

    # dnsbl::Parse reply id --
    #
    #	The A records of a DNS reply (see Query).

    proc ::dnsbl::Parse {reply id} {
	if {[binary scan $reply SuSuSuSu rid flags qdcount ancount] != 4
		|| $rid != $id || !($flags & 0x8000)} {
	    throw {DNSBL FORMAT} "malformed answer"
	}
	set rcode [expr {$flags & 0xf}]
	if {$rcode == 3} {
	    return {60}		;# NXDOMAIN: not listed
	}
	if {$rcode != 0} {
	    throw [list DNSBL RCODE $rcode] "answer with rcode $rcode"
	}
	set pos [Skip $reply 12 $qdcount 1]
	set ttl ""
	set addresses {}
	for {set i 0} {$i < $ancount} {incr i} {
	    set pos [Skip $reply $pos 1 0]
	    if {[binary scan $reply @${pos}SuSuIuSu type class rttl rdlength]
		    != 4} {
		throw {DNSBL FORMAT} "truncated answer"
	    }
	    incr pos 10
	    if {$type == 1 && $class == 1 && $rdlength == 4} {
		binary scan $reply @${pos}cucucucu a b c d
		lappend addresses $a.$b.$c.$d
		if {$ttl eq "" || $rttl < $ttl} {
		    set ttl $rttl
		}
	    }
	    incr pos $rdlength
	}
	if {$ttl eq ""} {
	    set ttl 60
	}
	return [list $ttl {*}$addresses]
    }

    # dnsbl::Skip reply pos count question --
    #
    #	The position after count names (each followed by type and class
    #	when question is set): labels, ended by a zero byte or a
    #	compression pointer.

    proc ::dnsbl::Skip {reply pos count question} {
	for {set i 0} {$i < $count} {incr i} {
	    while 1 {
		if {[binary scan $reply @${pos}cu len] != 1} {
		    throw {DNSBL FORMAT} "truncated name"
		}
		if {$len >= 0xc0} {
		    incr pos 2
		    break
		}
		incr pos [expr {$len + 1}]
		if {$len == 0} {
		    break
		}
	    }
	    if {$question} {
		incr pos 4
	    }
	}
	return $pos
    }

    # dnsbl::Lookup address --
    #
    #	Whether an IPv4 address is listed: the cached answer if there is
    #	one that has not expired (tsv array dnsbl-cache, shared by every
    #	worker), else a query, whose answer is cached for its TTL.
    #
    # Results:
    #	The A records (empty: not listed).  Errors as Query.

    proc ::dnsbl::Lookup {address} {
	variable zone
	variable cacheTtl
	set now [clock seconds]
	if {[tsv::get dnsbl-cache $address entry]
		&& [lindex $entry 0] > $now} {
	    tsv::incr dnsbl-stats cached
	    return [lrange $entry 1 end]
	}
	tsv::incr dnsbl-stats lookups
	set name [join [lreverse [split $address .]] .].$zone
	set answer [lassign [Query $name] ttl]
	if {$cacheTtl > 0} {
	    tsv::set dnsbl-cache $address \
		    [list [expr {$now + min($ttl, $cacheTtl)}] {*}$answer]
	}
	return $answer
    }

    # Callbacks.  connect decides; eom adds the header.

    proc ::dnsbl::Connect {ctx hostname addrInfo} {
	variable zone
	set address ""
	if {[dict get $addrInfo family] eq "inet"} {
	    set address [dict get $addrInfo address]
	}
	$ctx setpriv client $address
	if {$address eq ""} {
	    $ctx setpriv result none
	    return SMFIS_CONTINUE
	}
	if {[catch {Lookup $address} answer]} {
	    tsv::incr dnsbl-stats failed
	    $ctx setpriv result "unknown ($answer)"
	    return SMFIS_CONTINUE
	}
	if {[llength $answer]} {
	    tsv::incr dnsbl-stats listed
	    puts "dnsbl: listed $address ([join $answer {, }])"
	    flush stdout
	    $ctx setreply 554 5.7.1 "Service unavailable; client\
		    \[$address\] blocked using $zone"
	    return SMFIS_REJECT
	}
	$ctx setpriv result pass
	return SMFIS_CONTINUE
    }

    proc ::dnsbl::Eom {ctx} {
	variable zone
	set client [$ctx getpriv client]
	$ctx addheader X-DNSBL "$zone; client=[expr {$client eq ""
		? "-" : $client}]; result=[$ctx getpriv result]"
	return SMFIS_CONTINUE
    }
}

set workerScript [string map [list @ZONE@ [list $zone] \
	@NSHOST@ [list $nsHost] @NSPORT@ [list $nsPort] \
	@TIMEOUT@ [expr {[dict get $options -timeout] * 1000}] \
	@CACHETTL@ [dict get $options -cachettl]] $workerScript]
milter configure -name DNSBL -connection $spec \
	-workers [dict get $options -workers] -workerinit $workerScript

# The callbacks are names that the workers resolve in their own
# interpreters; the owner has no such commands.  With -workers 0 the
# owner runs them itself (and one slow lookup holds up every
# connection).
milter register connect ::dnsbl::Connect
milter register eom ::dnsbl::Eom
if {[dict get $options -workers] == 0} {
    uplevel #0 $workerScript
}

# The statistics line, from the owner: it reads what the workers counted.

proc stats {interval} {
    set counts {}
    foreach key {lookups cached listed failed} {
	lappend counts $key [tsv::incr dnsbl-stats $key 0]
    }
    puts "dnsbl: $counts"
    flush stdout
    after [expr {$interval * 1000}] [list stats $interval]
}
set interval [dict get $options -stats]
if {$interval > 0} {
    after [expr {$interval * 1000}] [list stats $interval]
}

# Serve until stopped.  [milter reload] (from a control channel, say)
# would start fresh workers from -workerinit without dropping a session.
milter main
