#!/usr/bin/env tclsh
# tagger.tcl --
#
#	A header tagging milter of the kind many sites run at the border:
#
#	  - every message gets an Authentication-Results header saying
#	    whether the client authenticated (SMTP AUTH), and an X-Scanned-By
#	    header, both inserted at the very top (insheader 0);
#	  - Authentication-Results headers that claim to come from this host
#	    but arrived with the message are forged, and are deleted
#	    (chgheader with an empty value);
#	  - the Subject of a message from an external sender (neither from
#	    an internal network nor authenticated) is prefixed with
#	    "[EXTERNAL]" (chgheader);
#	  - a message whose Subject or body contains one of the quarantine
#	    keywords is put on hold in the MTA's quarantine (quarantine).
#
#	Usage:
#	    tclsh tagger.tcl ?-connection? ?SPEC?
#
#	SPEC defaults to unix:/var/run/tagger.sock.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1

namespace eval tagger {
    # The authserv-id of our Authentication-Results headers.
    variable authservId mx.example.org

    # Clients on these IPv4 networks, the IPv6 loopback and local (unix
    # socket) clients are internal.
    variable internalNets {127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16}

    # Quarantine keywords, matched without case in the Subject and body.
    variable keywords {{wire transfer} {gift card} {password expired}}

    variable prefix {[EXTERNAL] }
    variable scanner "TclMilter tagger on [info hostname]"
}

# The connection spec: SPEC or -connection SPEC, read by cmdline.tcl (in
# this script's directory).
source [file join [file dirname [info script]] cmdline.tcl]
milter configure -name Tagger \
	-connection [example::connectionSpec unix:/var/run/tagger.sock]

# tagger::IsInternal --
#
#	Whether a connect callback's address information is internal.

proc tagger::IsInternal {addrInfo} {
    variable internalNets
    set family [dict get $addrInfo family]
    if {$family eq "unix"} {
	return 1
    }
    if {$family eq "inet6"} {
	return [expr {[dict get $addrInfo address] in {::1}}]
    }
    if {$family ne "inet"
	    || [scan [dict get $addrInfo address] %d.%d.%d.%d a b c d] != 4} {
	return 0
    }
    set ip [expr {($a << 24) | ($b << 16) | ($c << 8) | $d}]
    foreach net $internalNets {
	lassign [split $net /] base bits
	scan $base %d.%d.%d.%d a b c d
	set netIp [expr {($a << 24) | ($b << 16) | ($c << 8) | $d}]
	set mask [expr {(0xFFFFFFFF << (32 - $bits)) & 0xFFFFFFFF}]
	if {($ip & $mask) == ($netIp & $mask)} {
	    return 1
	}
    }
    return 0
}

# tagger::FindKeyword --
#
#	The first quarantine keyword found in a text, or "".

proc tagger::FindKeyword {text} {
    variable keywords
    set text [string tolower $text]
    foreach keyword $keywords {
	if {[string first $keyword $text] >= 0} {
	    return $keyword
	}
    }
    return ""
}

# Callbacks.  Per-session facts (internal client) live in the context's
# private data for the whole SMTP session; per-message facts are reset in
# envfrom, and after abort.

# negotiate: ask the MTA for the macros we use, where it lets us choose.
# Each element is one macro name as the MTA spells it: long names keep
# their braces, hence the quotes (a bare {auth_authen} would lose them to
# Tcl's own list syntax).
proc tagger::negotiate {ctx actions protocol} {
    if {"SMFIF_SETSYMLIST" in $actions} {
	$ctx setsymlist envfrom [list "{auth_authen}" "{auth_type}"]
	$ctx setsymlist eom [list i]
    }
    return SMFIS_CONTINUE
}

proc tagger::connect {ctx hostname addrInfo} {
    $ctx setpriv internal [IsInternal $addrInfo]
    $ctx setpriv client $hostname
    return SMFIS_CONTINUE
}

proc tagger::envfrom {ctx argv} {
    # A new message: forget the previous one's facts.
    $ctx unsetpriv msg.*
    $ctx setpriv msg.user [$ctx getsymval {auth_authen}]
    $ctx setpriv msg.forged {}
    $ctx setpriv msg.subjects 0
    $ctx setpriv msg.ar 0
    $ctx setpriv msg.keyword {}
    $ctx setpriv msg.tail {}
    return SMFIS_CONTINUE
}

proc tagger::header {ctx name value} {
    variable authservId
    switch -nocase -- $name {
	Subject {
	    set n [$ctx setpriv msg.subjects \
		    [expr {[$ctx getpriv msg.subjects] + 1}]]
	    if {$n == 1} {
		$ctx setpriv msg.subject $value
	    }
	    if {[$ctx getpriv msg.keyword] eq ""} {
		$ctx setpriv msg.keyword [FindKeyword $value]
	    }
	}
	Authentication-Results {
	    # Count every instance: chgheader addresses them by number.
	    set n [$ctx setpriv msg.ar [expr {[$ctx getpriv msg.ar] + 1}]]
	    set id [string trim [lindex [split $value ";"] 0]]
	    if {[string equal -nocase $id $authservId]} {
		$ctx setpriv msg.forged [linsert [$ctx getpriv msg.forged] 0 $n]
	    }
	}
    }
    return SMFIS_CONTINUE
}

# body: look for keywords chunk by chunk, keeping the end of the previous
# chunk so that a keyword split across two chunks is still found.  Once a
# keyword is found the rest of the body is not needed: SMFIS_SKIP.
proc tagger::body {ctx bytes} {
    variable keywords
    if {[$ctx getpriv msg.keyword] ne ""} {
	return SMFIS_SKIP
    }
    set text [$ctx getpriv msg.tail]$bytes
    set keyword [FindKeyword $text]
    if {$keyword ne ""} {
	$ctx setpriv msg.keyword $keyword
	return SMFIS_SKIP
    }
    set keep 1
    foreach k $keywords {
	set keep [expr {max($keep, [string length $k] - 1)}]
    }
    $ctx setpriv msg.tail [string range $text end-[expr {$keep - 1}] end]
    return SMFIS_CONTINUE
}

proc tagger::eom {ctx} {
    variable authservId
    variable prefix
    variable scanner

    # Delete forged results first, last one first, so that neither the
    # numbering of the remaining ones nor our own new header is affected.
    foreach n [$ctx getpriv msg.forged] {
	$ctx chgheader Authentication-Results $n ""
    }

    set user [$ctx getpriv msg.user]
    if {$user ne ""} {
	set result "auth=pass smtp.auth=$user"
    } else {
	set result "auth=none"
    }
    $ctx insheader X-Scanned-By 0 $scanner
    $ctx insheader Authentication-Results 0 "$authservId; $result"

    if {![$ctx getpriv internal] && $user eq ""} {
	if {[$ctx getpriv msg.subjects] == 0} {
	    $ctx addheader Subject [string trimright $prefix]
	} else {
	    set subject [$ctx getpriv msg.subject]
	    if {![string match "$prefix*" $subject]} {
		$ctx chgheader Subject 1 $prefix$subject
	    }
	}
    }

    set keyword [$ctx getpriv msg.keyword]
    if {$keyword ne ""} {
	if {[catch {$ctx quarantine "tagger: keyword \"$keyword\""} msg]} {
	    # The MTA did not offer SMFIF_QUARANTINE: tag instead.
	    $ctx addheader X-Tagger-Keyword $keyword
	}
    }
    return SMFIS_CONTINUE
}

proc tagger::abort {ctx} {
    $ctx unsetpriv msg.*
    return SMFIS_CONTINUE
}

foreach event {negotiate connect envfrom header body eom abort} {
    milter register $event tagger::$event
}
milter main
