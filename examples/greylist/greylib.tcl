# greylib.tcl --
#
#	The policy of the greylisting milter (greylist.tcl): its callbacks
#	and their helpers.  Sourced by the owner interpreter and, with
#	workers, by every worker interpreter (-workerinit), each of which
#	then calls greylist::init with the settings.  Callbacks run as
#	coroutines (-coroutines 1): they yield while the DNS or the
#	database answers, so one interpreter serves many connections.
#
#	Per connection:
#	    connect   whitelists by network and client domain; DNSBL
#		      queries sent (answers awaited at MAIL)
#	    envfrom   whitelists by authenticated sender and sender domain;
#		      DNSBL verdict; rate limits and auto-whitelist (one
#		      database request)
#	    envrcpt   the greylisting of (client network, sender,
#		      recipient) (one database request)
#	    eom       X-Greylist and X-DNSBL headers
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require Thread
package require TclMilter

namespace eval ::greylist {
    variable cfg {}		;# the settings (greylist.tcl checked them)
    variable dir [file dirname [file normalize [info script]]]
    variable host [info hostname]
    variable logChan stderr
    variable levels {debug 0 info 1 notice 2 warning 3 error 4}
    variable networks {}	;# whitelisted networks, parsed
}

# ---------------------------------------------------------------------
# Set-up and logging
# ---------------------------------------------------------------------

# greylist::init --
#	Take the settings, open the log, start the database thread and
#	configure the DNS resolver, in this interpreter.

proc ::greylist::init {config} {
    variable cfg $config
    variable logChan
    variable networks
    if {[dict get $cfg log_file] ne ""} {
	set logChan [open [dict get $cfg log_file] a]
	fconfigure $logChan -buffering line -encoding utf-8
    }
    set networks {}
    foreach cidr [dict get $cfg whitelist_networks] {
	lappend networks [net::parse $cidr] $cidr
    }
    db::start
    if {[llength [dict get $cfg dnsbl_zones]]} {
	package require dns
	dns::configure -nameserver [dict get $cfg dnsbl_nameserver] \
		-port [dict get $cfg dnsbl_port] \
		-protocol [expr {[catch {package require udp}] ? "tcp"
			: "udp"}]
    }
    return
}

# greylist::log --
#	One line to the log: time, process, level, message.  Lines below
#	log_level are dropped.

proc ::greylist::log {level message} {
    variable cfg
    variable logChan
    variable levels
    if {[dict get $levels $level]
	    < [dict get $levels [dict get $cfg log_level]]} {
	return
    }
    # One line per event, whatever the message holds (libpq's errors
    # span lines).
    set message [regsub -all {[ \t]*[\r\n]+[ \t]*} [string trim $message] " "]
    set time [clock format [clock seconds] -format {%Y-%m-%dT%H:%M:%S}]
    catch {
	puts $logChan "$time [dict get $cfg name]\[[pid]\] $level: $message"
    }
    return
}

# greylist::milterlog --
#	-logcommand of the owner: TclMilter's own lines go to the same log.

proc ::greylist::milterlog {level message} {
    variable levels
    if {![dict exists $levels $level]} {
	set level notice
    }
    log $level "milter: $message"
}

# ---------------------------------------------------------------------
# Addresses and networks
# ---------------------------------------------------------------------

namespace eval ::greylist::net {}

# greylist::net::parse --
#	"a.b.c.d/n" or "x:y::z/n" (or an address alone) -> {family bits n}
#	where bits is the address as a string of 32 or 128 binary digits.
#	An error for anything else.

proc ::greylist::net::parse {cidr} {
    if {![regexp {^([^/]+)(?:/(\d+))?$} $cidr -> address len]} {
	error "bad network \"$cidr\""
    }
    set bits [bits $address]
    set max [string length $bits]
    if {$len eq ""} {
	set len $max
    }
    if {$len > $max} {
	error "bad network \"$cidr\": prefix longer than $max"
    }
    return [list $max $bits $len]
}

# greylist::net::bits --
#	The address as 32 (IPv4) or 128 (IPv6) binary digits.

proc ::greylist::net::bits {address} {
    if {[regexp {^(\d+)\.(\d+)\.(\d+)\.(\d+)$} $address -> a b c d]} {
	foreach octet [list $a $b $c $d] {
	    if {$octet > 255} {
		error "bad IPv4 address \"$address\""
	    }
	}
	return [format %08b%08b%08b%08b $a $b $c $d]
    }
    return [join [lmap g [groups6 $address] {
	format %016b [scan $g %x]
    }] ""]
}

# greylist::net::groups6 --
#	The eight 16-bit groups of an IPv6 address, in hex (an IPv4 tail,
#	as in ::ffff:192.0.2.1, gives the last two).

proc ::greylist::net::groups6 {address} {
    set a [string tolower $address]
    if {[regexp {^(.*:)(\d+\.\d+\.\d+\.\d+)$} $a -> head v4]} {
	set b [bits $v4]
	set a $head[format %x [expr "0b[string range $b 0 15]"]]:[format %x \
		[expr "0b[string range $b 16 31]"]]
    }
    if {![regexp {^[0-9a-f:]+$} $a] || [regexp {:::} $a]
	    || [regsub -all {::} $a {} -] > 1} {
	error "bad IPv6 address \"$address\""
    }
    if {[string first :: $a] >= 0} {
	set parts [split [string map {:: |} $a] |]
	set head [expr {[lindex $parts 0] eq "" ? {}
		: [split [lindex $parts 0] :]}]
	set tail [expr {[lindex $parts 1] eq "" ? {}
		: [split [lindex $parts 1] :]}]
	set fill [expr {8 - [llength $head] - [llength $tail]}]
	if {$fill < 1} {
	    error "bad IPv6 address \"$address\""
	}
	set groups [concat $head [lrepeat $fill 0] $tail]
    } else {
	set groups [split $a :]
    }
    if {[llength $groups] != 8} {
	error "bad IPv6 address \"$address\""
    }
    foreach g $groups {
	if {![regexp {^[0-9a-f]{1,4}$} $g]} {
	    error "bad IPv6 address \"$address\""
	}
    }
    return $groups
}

# greylist::net::contains --
#	Is address in the parsed network?

proc ::greylist::net::contains {parsed address} {
    lassign $parsed max bits len
    if {[catch {bits $address} abits] || [string length $abits] != $max} {
	return 0
    }
    return [expr {[string range $abits 0 $len-1]
	    eq [string range $bits 0 $len-1]}]
}

# greylist::net::network --
#	The client network of a triplet: the address with the host part
#	cleared, as "a.b.c.0/24" or "2001:db8:1:2::/64".

proc ::greylist::net::network {address prefix4 prefix6} {
    set b [bits $address]
    if {[string length $b] == 32} {
	set b [string range $b 0 $prefix4-1][string repeat 0 \
		[expr {32 - $prefix4}]]
	set octets {}
	for {set i 0} {$i < 32} {incr i 8} {
	    lappend octets [expr "0b[string range $b $i $i+7]"]
	}
	return [join $octets .]/$prefix4
    }
    set b [string range $b 0 $prefix6-1][string repeat 0 \
	    [expr {128 - $prefix6}]]
    set groups {}
    for {set i 0} {$i < 128} {incr i 16} {
	lappend groups [format %x [expr "0b[string range $b $i $i+15]"]]
    }
    # Compress the longest run of zero groups.
    set text :[join $groups :]:
    for {set n 8} {$n >= 2} {incr n -1} {
	set run :[join [lrepeat $n 0] :]:
	if {[string first $run $text] >= 0} {
	    regsub $run $text :: text
	    break
	}
    }
    regsub {^:([^:])} $text {\1} text
    regsub {([^:]):$} $text {\1} text
    return $text/$prefix6
}

# greylist::net::reverse --
#	The DNSBL query name of an address under zone: d.c.b.a.zone, or
#	the 32 nibbles of an IPv6 address, reversed.

proc ::greylist::net::reverse {address zone} {
    set b [bits $address]
    if {[string length $b] == 32} {
	return [join [lreverse [split $address .]] .].$zone
    }
    set hex [join [lmap g [groups6 $address] {format %04x [scan $g %x]}] ""]
    return [join [lreverse [split $hex ""]] .].$zone
}

# greylist::address --
#	An envelope address as the key of a triplet: without the angle
#	brackets and lower case ("" for the null sender).

proc ::greylist::address {arg} {
    set a [string trim $arg]
    if {[string index $a 0] eq "<" && [string index $a end] eq ">"} {
	set a [string range $a 1 end-1]
    }
    return [string tolower $a]
}

# greylist::seconds --
#	"1 second", "N seconds".

proc ::greylist::seconds {n} {
    return [expr {$n == 1 ? "1 second" : "$n seconds"}]
}

# greylist::inDomains --
#	Is name (a host name or the domain of an address) one of the
#	domains, or below one?

proc ::greylist::inDomains {name domains} {
    set name [string tolower [string trimright $name .]]
    foreach d $domains {
	set d [string tolower [string trimright $d .]]
	if {$name eq $d || [string match *.$d $name]} {
	    return 1
	}
    }
    return 0
}

# ---------------------------------------------------------------------
# The database thread's client
# ---------------------------------------------------------------------

namespace eval ::greylist::db {
    variable thread {}		;# the database thread
    variable seq 0
    variable waiting		;# token -> coroutine (or "" if vwait)
    variable answers		;# token -> {code result}, for vwait
    variable stuck {}		;# token of a request that timed out
    variable stuckSince 0
    array set waiting {}
    array set answers {}
}

# greylist::db::start --
#	Start this interpreter's database thread.  It ends when the
#	interpreter goes (a worker retired by milter reload, for example).

proc ::greylist::db::start {} {
    variable thread
    set thread [thread::create]
    thread::send $thread [list source [file join $::greylist::dir greydb.tcl]]
    thread::send $thread [list ::greydb::init $::greylist::cfg]
    # A command whose deletion (with the interpreter) ends the thread.
    proc ::greylist::db::sentinel {} {}
    trace add command ::greylist::db::sentinel delete \
	    [list ::greylist::db::stop $thread]
    return
}

proc ::greylist::db::stop {thread args} {
    catch {thread::send -async $thread {::greydb::disconnect}}
    catch {thread::release $thread}
}

# greylist::db::call --
#	Send a request to the database thread and wait for its answer, at
#	most db_timeout ms: in a coroutine by yielding, else with vwait.
#	Returns the answer (a dict); an error when the database failed or
#	did not answer in time.  While a request that timed out is still
#	pending, the database is taken to hang and new requests fail at
#	once, so that a hung database costs each message nothing.

proc ::greylist::db::call {op args} {
    variable thread
    variable seq
    variable waiting
    variable answers
    variable stuck
    variable stuckSince
    set timeout [dict get $::greylist::cfg db_timeout]
    if {$stuck ne ""} {
	error "database not answering (a request is pending for\
		[expr {[clock milliseconds] - $stuckSince}] ms)"
    }
    set token [incr seq]
    set coro [info coroutine]
    set waiting($token) $coro
    thread::send -async $thread [list ::greydb::request [thread::id] \
	    $token $op {*}$args]
    set timer [after $timeout [list ::greylist::db::timeout $token]]
    if {$coro ne ""} {
	while {![info exists answers($token)]} {
	    yield
	}
    } else {
	vwait ::greylist::db::answers($token)
    }
    after cancel $timer
    lassign $answers($token) code result
    unset answers($token)
    if {$code != 0} {
	error $result
    }
    return $result
}

# greylist::db::reply --
#	An answer from the database thread (or a timeout): wake up whoever
#	waits for it.  A late answer to a request that timed out ends the
#	"not answering" state.

proc ::greylist::db::reply {token code result} {
    variable waiting
    variable answers
    variable stuck
    if {$token eq $stuck} {
	set stuck {}
	::greylist::log notice "database answering again"
    }
    if {![info exists waiting($token)]} {
	return
    }
    set coro $waiting($token)
    unset waiting($token)
    set answers($token) [list $code $result]
    if {$coro ne "" && [llength [info commands $coro]]} {
	$coro
    } elseif {$coro ne ""} {
	# The callback's coroutine is gone (its connection ended).
	unset answers($token)
    }
}

proc ::greylist::db::timeout {token} {
    variable waiting
    variable stuck
    variable stuckSince
    if {![info exists waiting($token)]} {
	return
    }
    reply $token 1 "database did not answer within\
	    [dict get $::greylist::cfg db_timeout] ms"
    # Its answer, when it comes, ends the "not answering" state.
    set stuck $token
    set stuckSince [clock milliseconds]
}

# ---------------------------------------------------------------------
# DNSBL
# ---------------------------------------------------------------------

namespace eval ::greylist::dnsbl {
    variable state		;# ctx -> dict zone -> result (or "")
    variable waiter		;# ctx -> coroutine waiting for all answers
    variable cache		;# address,zone -> {expiry result}
    array set state {}
    array set waiter {}
    array set cache {}
}

# greylist::dnsbl::start --
#	Send the queries for address to every zone; the answers are
#	collected in state($ctx) by record.  A result is "listed ANSWERS",
#	"clean", or "failed REASON".

proc ::greylist::dnsbl::start {ctx address} {
    variable state
    variable cache
    set cfg $::greylist::cfg
    set state($ctx) {}
    set now [clock seconds]
    if {[array size cache] > 20000} {
	prune $now
    }
    foreach spec [dict get $cfg dnsbl_zones] {
	set zone [lindex $spec 0]
	dict set state($ctx) $zone ""
	if {[info exists cache($address,$zone)]
		&& [lindex $cache($address,$zone) 0] > $now} {
	    dict set state($ctx) $zone [lindex $cache($address,$zone) 1]
	    continue
	}
	set name [::greylist::net::reverse $address $zone]
	if {[catch {
	    dns::resolve $name -type A \
		    -timeout [dict get $cfg dnsbl_timeout] \
		    -command [list ::greylist::dnsbl::answer $ctx $zone \
			$address]
	} msg]} {
	    dict set state($ctx) $zone [list failed $msg]
	}
    }
    return
}

# greylist::dnsbl::prune --
#	Keep the cache bounded: drop what has expired, and everything if
#	that is not enough.

proc ::greylist::dnsbl::prune {now} {
    variable cache
    foreach key [array names cache] {
	if {[lindex $cache($key) 0] <= $now} {
	    unset cache($key)
	}
    }
    if {[array size cache] > 10000} {
	array unset cache
    }
}

# greylist::dnsbl::answer --
#	dns -command: record the result (from the event loop, never inside
#	dns::resolve) and wake the waiter once every zone has answered.

proc ::greylist::dnsbl::answer {ctx zone address token} {
    after 0 [list ::greylist::dnsbl::record $ctx $zone $address $token]
}

proc ::greylist::dnsbl::record {ctx zone address token} {
    variable state
    variable cache
    switch -- [dns::status $token] {
	ok {
	    set listed {}
	    foreach a [dns::address $token] {
		if {[string match 127.* $a]} {
		    lappend listed $a
		}
	    }
	    set result [expr {[llength $listed] ? [list listed $listed]
		    : "clean"}]
	}
	error {
	    set err [dns::error $token]
	    set result [expr {[string match "Name Error*" $err] ? "clean"
		    : [list failed $err]}]
	}
	default {
	    set result [list failed [dns::status $token]]
	}
    }
    dns::cleanup $token
    if {[lindex $result 0] ne "failed"} {
	set cache($address,$zone) [list [expr {[clock seconds]
		+ [dict get $::greylist::cfg dnsbl_cache]}] $result]
    }
    if {![info exists state($ctx)]} {
	return
    }
    dict set state($ctx) $zone $result
    if {[complete $ctx]} {
	wake $ctx
    }
}

# greylist::dnsbl::wake --
#	Resume the callback that waits (await) for the verdict on ctx, if
#	one waits and its coroutine still exists.

proc ::greylist::dnsbl::wake {ctx} {
    variable waiter
    if {[info exists waiter($ctx)]} {
	set coro $waiter($ctx)
	unset waiter($ctx)
	if {[llength [info commands $coro]]} {
	    $coro
	}
    }
}

# greylist::dnsbl::complete --
#	Is the DNSBL verdict known: every zone has answered, or a reject
#	zone lists the client (the others need not be waited for)?

proc ::greylist::dnsbl::complete {ctx} {
    variable state
    set done 1
    foreach spec [dict get $::greylist::cfg dnsbl_zones] {
	lassign $spec zone action
	set result [dict get $state($ctx) $zone]
	if {$result eq ""} {
	    set done 0
	} elseif {$action eq "reject" && [lindex $result 0] eq "listed"} {
	    return 1
	}
    }
    return $done
}

# greylist::dnsbl::await --
#	Wait (yield) until every zone has answered or timed out, then
#	return the dict zone -> result.  Every query has its own timeout;
#	a guard timer covers a resolver that never calls back.

proc ::greylist::dnsbl::await {ctx} {
    variable state
    variable waiter
    if {![info exists state($ctx)]} {
	return {}
    }
    if {![complete $ctx]} {
	set coro [info coroutine]
	set waiter($ctx) $coro
	set guard [after [expr {[dict get $::greylist::cfg dnsbl_timeout]
		+ 1000}] [list ::greylist::dnsbl::giveUp $ctx]]
	while {![complete $ctx]} {
	    yield
	}
	after cancel $guard
    }
    return $state($ctx)
}

proc ::greylist::dnsbl::giveUp {ctx} {
    variable state
    if {![info exists state($ctx)]} {
	return
    }
    dict for {zone result} $state($ctx) {
	if {$result eq ""} {
	    dict set state($ctx) $zone [list failed "no answer"]
	}
    }
    wake $ctx
}

proc ::greylist::dnsbl::forget {ctx} {
    variable state
    variable waiter
    unset -nocomplain state($ctx) waiter($ctx)
}

# greylist::dnsbl::verdict --
#	Apply the zones' actions to the results: a dict with
#	    reject  "" or the reply text
#	    tags    the zones whose action is tag and that list the client
#	    score   the sum of the weights of the listing score zones
#	    scored  those zones
#	    failed  zone -> reason for zones that gave no answer

proc ::greylist::dnsbl::verdict {address results} {
    set cfg $::greylist::cfg
    set v [dict create reject "" tags {} score 0 scored {} failed {}]
    foreach spec [dict get $cfg dnsbl_zones] {
	lassign $spec zone action weight
	if {![dict exists $results $zone]} {
	    continue
	}
	set result [dict get $results $zone]
	switch -- [lindex $result 0] {
	    "" {
		# Not waited for: another zone rejects.
		continue
	    }
	    failed {
		dict set v failed $zone [lindex $result 1]
		continue
	    }
	    clean {
		continue
	    }
	}
	switch -- $action {
	    reject {
		if {[dict get $v reject] eq ""} {
		    dict set v reject "Client host \[$address\] blocked\
			    using $zone"
		}
	    }
	    tag {
		dict lappend v tags $zone
	    }
	    score {
		if {$weight eq ""} {
		    set weight 1
		}
		dict set v score [expr {[dict get $v score] + $weight}]
		dict lappend v scored $zone
	    }
	}
    }
    if {[dict get $v reject] eq "" && [llength [dict get $v scored]]
	    && [dict get $v score] >= [dict get $cfg dnsbl_threshold]} {
	dict set v reject "Client host \[$address\] blocked: DNSBL score\
		[dict get $v score] ([join [dict get $v scored] {, }])"
    }
    return $v
}

# ---------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------

# greylist::connect --
#	Remember the client, decide the whitelists known at connect, send
#	the DNSBL queries.  Clients without an IP address (local
#	submission over a unix socket) are whitelisted.

proc ::greylist::connect {ctx hostname addrInfo} {
    variable cfg
    variable networks
    $ctx setpriv client.host $hostname
    $ctx setpriv client.wl ""
    $ctx setpriv client.nodnsbl 0
    $ctx setpriv client.norate 0
    set family [dict get $addrInfo family]
    if {$family ni {inet inet6}} {
	$ctx setpriv client.address ""
	$ctx setpriv client.net ""
	$ctx setpriv client.wl "local client"
	$ctx setpriv client.nodnsbl 1
	$ctx setpriv client.norate 1
	return SMFIS_CONTINUE
    }
    set address [dict get $addrInfo address]
    $ctx setpriv client.address $address
    $ctx setpriv client.net [net::network $address \
	    [dict get $cfg ipv4_prefix] [dict get $cfg ipv6_prefix]]
    foreach {parsed cidr} $networks {
	if {[net::contains $parsed $address]} {
	    $ctx setpriv client.wl "client network $cidr whitelisted"
	    $ctx setpriv client.nodnsbl 1
	    $ctx setpriv client.norate 1
	    return SMFIS_CONTINUE
	}
    }
    if {[inDomains $hostname [dict get $cfg whitelist_client_domains]]} {
	$ctx setpriv client.wl "client domain whitelisted"
    }
    if {[llength [dict get $cfg dnsbl_zones]]} {
	dnsbl::start $ctx $address
    }
    return SMFIS_CONTINUE
}

# greylist::envfrom --
#	A new message: whitelists by authentication and sender domain,
#	the DNSBL verdict, then rate limits and the auto-whitelist.

proc ::greylist::envfrom {ctx argv} {
    variable cfg
    $ctx unsetpriv msg.*
    if {[catch {$ctx getpriv client.wl}]} {
	# No CONNECT (an MTA that does not send it): no address known.
	foreach {key value} {address "" net "" wl "" nodnsbl 1 norate 0} {
	    $ctx setpriv client.$key $value
	}
    }
    set sender [address [lindex $argv 0]]
    $ctx setpriv msg.sender $sender
    $ctx setpriv msg.delayed -1
    $ctx setpriv msg.dbdown 0
    $ctx setpriv msg.tags {}
    $ctx setpriv msg.wl ""
    set client [$ctx getpriv client.address]
    set wl [$ctx getpriv client.wl]
    set nodnsbl [$ctx getpriv client.nodnsbl]
    set auth [$ctx getsymval {auth_authen}]
    if {$auth ne "" && [dict get $cfg whitelist_auth]} {
	set wl "authenticated as $auth"
	set nodnsbl 1
    }
    if {$wl eq "" && [string match *@* $sender]
	    && [inDomains [lindex [split $sender @] end] \
		[dict get $cfg whitelist_sender_domains]]} {
	set wl "sender domain whitelisted"
    }

    # DNSBL: the queries were sent at connect.
    if {!$nodnsbl && [llength [dict get $cfg dnsbl_zones]]} {
	set v [dnsbl::verdict $client [dnsbl::await $ctx]]
	dict for {zone reason} [dict get $v failed] {
	    log warning "dnsbl: no answer from $zone for $client: $reason"
	}
	if {[dict get $v reject] ne ""} {
	    log notice "rejected client=$client from=<$sender>:\
		    [dict get $v reject]"
	    $ctx setreply 550 5.7.1 [dict get $v reject]
	    return SMFIS_REJECT
	}
	foreach zone [dict get $v tags] {
	    $ctx setpriv msg.tags [concat [$ctx getpriv msg.tags] \
		    [list X-DNSBL "$client listed in $zone"]]
	}
	if {[llength [dict get $v scored]]} {
	    $ctx setpriv msg.tags [concat [$ctx getpriv msg.tags] \
		    [list X-DNSBL-Score "[dict get $v score]\
		    ([join [dict get $v scored] {, }])"]]
	}
    }

    # Rate limits (not for whitelisted networks) and the auto-whitelist.
    set rates {}
    if {![$ctx getpriv client.norate]} {
	if {[llength [dict get $cfg rate_sender]] && $sender ne ""} {
	    lassign [dict get $cfg rate_sender] limit seconds
	    lappend rates [list sender $sender $limit \
		    [expr {$seconds * 1000}]]
	}
	if {[llength [dict get $cfg rate_client]] && $client ne ""} {
	    lassign [dict get $cfg rate_client] limit seconds
	    lappend rates [list client $client $limit \
		    [expr {$seconds * 1000}]]
	}
    }
    set awl [expr {$wl eq "" ? [dict get $cfg awl_count] : 0}]
    if {[llength $rates] || $awl > 0} {
	if {[catch {
	    db::call envfrom [$ctx getpriv client.net] [clock milliseconds] \
		    [expr {[dict get $cfg expiry] * 1000}] $awl $rates
	} r]} {
	    return [dbFailed $ctx $r "client=$client from=<$sender>"]
	}
	if {[llength [dict get $r over]]} {
	    lassign [dict get $r over] kind key limit window count
	    set what [expr {$kind eq "sender" ? "<$key>" : "client $key"}]
	    log notice "rate limit: client=$client from=<$sender>: $what\
		    sent $count messages in [expr {$window / 1000}] s\
		    (limit $limit)"
	    $ctx setreply 450 4.7.1 "Rate limit exceeded for $what: at most\
		    $limit messages in [seconds [expr {$window / 1000}]]"
	    return SMFIS_TEMPFAIL
	}
	if {[dict get $r awl]} {
	    set wl "client auto-whitelisted after [dict get $r passes]\
		    successful retries"
	}
    }
    $ctx setpriv msg.wl $wl
    return SMFIS_CONTINUE
}

# greylist::envrcpt --
#	Greylist the triplet unless the message is whitelisted.

proc ::greylist::envrcpt {ctx argv} {
    variable cfg
    if {[$ctx getpriv msg.wl] ne "" || [$ctx getpriv msg.dbdown]} {
	return SMFIS_CONTINUE
    }
    set rcpt [address [lindex $argv 0]]
    set sender [$ctx getpriv msg.sender]
    set client [$ctx getpriv client.address]
    set where "client=$client from=<$sender> rcpt=<$rcpt>"
    if {[catch {
	db::call rcpt [$ctx getpriv client.net] $sender $rcpt \
		[clock milliseconds] [expr {[dict get $cfg delay] * 1000}] \
		[expr {[dict get $cfg retry_window] * 1000}] \
		[expr {[dict get $cfg expiry] * 1000}]
    } r]} {
	return [dbFailed $ctx $r $where]
    }
    if {[dict get $r verdict] eq "greylist"} {
	set wait [expr {([dict get $r wait] + 999) / 1000}]
	log notice "greylisted $where ([dict get $r reason]), retry in\
		$wait s"
	$ctx setreply 451 4.7.1 "Greylisted, please try again in\
		[seconds $wait]"
	return SMFIS_TEMPFAIL
    }
    set delayed [expr {[dict get $r delayed] / 1000}]
    if {[dict get $r reason] eq "retried"} {
	log info "passed $where after $delayed s (client network retries:\
		[dict get $r awl])"
    }
    if {$delayed > [$ctx getpriv msg.delayed]} {
	$ctx setpriv msg.delayed $delayed
    }
    return SMFIS_CONTINUE
}

# greylist::dbFailed --
#	The database failed or did not answer: log it, and tempfail the
#	command or let the message through unchecked (db_failure).

proc ::greylist::dbFailed {ctx error where} {
    variable cfg
    if {[dict get $cfg db_failure] eq "accept"} {
	log warning "database unavailable ($error): accepting $where"
	$ctx setpriv msg.dbdown 1
	return SMFIS_CONTINUE
    }
    log warning "database unavailable ($error): tempfail $where"
    $ctx setreply 451 4.3.0 "Temporary local problem, please try again\
	    later"
    return SMFIS_TEMPFAIL
}

# greylist::eom --
#	Say in the message what greylisting did with it.

proc ::greylist::eom {ctx} {
    variable cfg
    variable host
    foreach {name value} [$ctx getpriv msg.tags] {
	addheader $ctx $name $value
    }
    if {![dict get $cfg header]} {
	return SMFIS_CONTINUE
    }
    set date [clock format [clock seconds] \
	    -format {%a, %d %b %Y %H:%M:%S +0000} -gmt 1]
    set by "by TclMilter greylist on $host; $date"
    set wl [$ctx getpriv msg.wl]
    if {[$ctx getpriv msg.dbdown]} {
	set text "not checked (database unavailable) $by"
    } elseif {$wl ne ""} {
	set text "not delayed ($wl) $by"
    } elseif {[$ctx getpriv msg.delayed] > 0} {
	set text "delayed [seconds [$ctx getpriv msg.delayed]] $by"
    } else {
	set text "not delayed (passed before) $by"
    }
    addheader $ctx X-Greylist $text
    return SMFIS_CONTINUE
}

# greylist::addheader --
#	Add a header; an MTA that did not grant the action (or has gone)
#	costs a log line, not the message.

proc ::greylist::addheader {ctx name value} {
    if {[catch {$ctx addheader $name $value} msg]} {
	log warning "cannot add $name: $msg"
    }
}

proc ::greylist::abort {ctx} {
    $ctx unsetpriv msg.*
    return SMFIS_CONTINUE
}

proc ::greylist::closed {ctx} {
    dnsbl::forget $ctx
    return SMFIS_CONTINUE
}

# greylist::maintain --
#	Delete expired rows (run by the owner every cleanup_interval
#	seconds, in a coroutine of its own).

proc ::greylist::maintain {} {
    variable cfg
    set rateWindow 0
    foreach key {rate_sender rate_client} {
	if {[llength [dict get $cfg $key]]} {
	    set w [expr {[lindex [dict get $cfg $key] 1] * 1000}]
	    if {$w > $rateWindow} {
		set rateWindow $w
	    }
	}
    }
    if {[catch {
	db::call maintain [clock milliseconds] \
		[expr {[dict get $cfg retry_window] * 1000}] \
		[expr {[dict get $cfg expiry] * 1000}] $rateWindow
    } r]} {
	log warning "expiry run failed: $r"
    } else {
	log info "expired [dict get $r triplets] triplets,\
		[dict get $r awl] auto-whitelist entries,\
		[dict get $r rate] rate-limit events"
    }
}
