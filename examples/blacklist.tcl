#!/usr/bin/env tclsh
# blacklist.tcl --
#
#	A small address blacklist milter, the TclMilter 1.0 manual's example
#	brought up to date.  A message is refused with "550 5.7.1" when its
#	envelope sender (MAIL FROM) or one of the addresses in its From:
#	header is on the blacklist.
#
#	Usage:
#	    tclsh blacklist.tcl ?SPEC?
#	    tclsh blacklist.tcl -connection SPEC
#
#	SPEC is a connection spec such as unix:/var/run/blmilter.sock (the
#	default) or inet:8890@127.0.0.1.  Point the MTA at it, for Postfix:
#	    smtpd_milters = unix:/var/run/blmilter.sock
#	The script runs until SIGTERM, SIGINT or SIGHUP (or milter stop):
#	messages in progress finish, milter main returns and the socket file
#	is removed.  After a SIGKILL, the stale socket file left behind is
#	replaced the next time it starts.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1

# Addresses to refuse, compared without case.  A "@domain" entry refuses
# every address of that domain.
set blacklist {
    friend@public.com
    spammer@spamdomain.com
    @junk.example
}

# The connection spec: the first argument, with or without -connection.
set spec unix:/var/run/blmilter.sock
if {[lindex $argv 0] eq "-connection"} {
    set argv [lrange $argv 1 end]
}
if {[llength $argv] > 1} {
    puts stderr "usage: [file tail [info script]] ?-connection? ?spec?"
    exit 2
}
if {[llength $argv] == 1} {
    set spec [lindex $argv 0]
}

milter configure -name Blacklist -connection $spec

# addresses --
#
#	The mail addresses in an envelope argument or a From: header value:
#	whatever stands in angle brackets, or else every word with an @ in
#	it.  Comments in parentheses are ignored.
#
# Arguments:
#	text	"<a@b>", "Name <a@b>", "a@b (Name)", "a@b, c@d", ...
#
# Results:
#	A list of addresses, lower case, possibly empty.

proc addresses {text} {
    regsub -all {\([^()]*\)} $text { } text
    set found [regexp -all -inline {<([^<>]*)>} $text]
    if {[llength $found]} {
	set list {}
	foreach {whole inner} $found {
	    lappend list $inner
	}
    } else {
	set list [regexp -all -inline {[^\s,;<>"]+@[^\s,;<>"]+} $text]
    }
    return [lmap address $list {string tolower [string trim $address]}]
}

# blacklisted --
#
#	The first blacklisted address in a text, or "".

proc blacklisted {text} {
    foreach address [addresses $text] {
	set domain @[lindex [split $address @] end]
	foreach entry $::blacklist {
	    set entry [string tolower $entry]
	    if {$address eq $entry || $domain eq $entry} {
		return $address
	    }
	}
    }
    return ""
}

# refuse --
#
#	Sets the SMTP reply and logs one line.
#
# Results:
#	SMFIS_REJECT, for the callback to return.

proc refuse {ctx where address} {
    $ctx setreply 550 5.7.1 "Mail from <$address> is not accepted here"
    puts "Blacklist: rejected $where <$address>"
    flush stdout
    return SMFIS_REJECT
}

# Callbacks.  envfrom gets the MAIL FROM arguments (address first, then any
# ESMTP parameters); header gets one header's name and value.

proc bl_envfrom {ctx argv} {
    set address [blacklisted [lindex $argv 0]]
    if {$address ne ""} {
	return [refuse $ctx sender $address]
    }
    return SMFIS_CONTINUE
}

proc bl_header {ctx name value} {
    if {[string equal -nocase $name From]} {
	set address [blacklisted $value]
	if {$address ne ""} {
	    return [refuse $ctx "From: header" $address]
	}
    }
    return SMFIS_CONTINUE
}

milter register envfrom bl_envfrom
milter register header bl_header

# Serve until stopped (TERM, INT and HUP stop it too).  The socket file
# is removed when milter main returns, and a stale one is replaced at the
# next start.
milter main
