#!/usr/bin/env tclsh
# routing.tcl --
#
#	Envelope routing at the end of each message:
#
#	  - role addresses are redirected: a recipient listed in the
#	    redirect table is removed (delrcpt) and its replacement added
#	    (addrcpt);
#	  - a copy of every message goes to an archive mailbox, added with the
#	    ESMTP parameter NOTIFY=NEVER so that a failure to deliver the copy
#	    never bounces back to the sender (addrcpt with arguments; plain
#	    addrcpt when the MTA does not offer SMFIF_ADDRCPT_PAR);
#	  - senders in internal host domains are masqueraded as the main
#	    domain (chgfrom), e.g. <build@ci01.corp.example.com> becomes
#	    <build@example.com>.
#
#	Usage:
#	    tclsh routing.tcl ?-connection? ?SPEC?
#
#	SPEC defaults to unix:/var/run/routing.sock.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1

namespace eval routing {
    # Recipient -> replacement (lower case, without angle brackets).
    variable redirect {
	sales@example.com	crm-inbox@example.com
	abuse@example.com	security-team@example.com
    }

    # Mailbox that gets a copy of everything, and its RCPT parameters.
    variable archive archive@example.com
    variable archiveArgs NOTIFY=NEVER

    # Sender domains matching this pattern are rewritten to the main one.
    variable masqueradePattern *.corp.example.com
    variable mainDomain example.com
}

# The connection spec: SPEC or -connection SPEC, read by cmdline.tcl (in
# this script's directory).
source [file join [file dirname [info script]] cmdline.tcl]
milter configure -name Routing \
	-connection [example::connectionSpec unix:/var/run/routing.sock]

# routing::Bare --
#
#	An envelope address without angle brackets, in lower case.

proc routing::Bare {address} {
    return [string tolower [string trim $address " <>"]]
}

# Callbacks.  envfrom and envrcpt receive the MAIL/RCPT arguments as the
# MTA sent them: the address (with its angle brackets) first, then any
# ESMTP parameters.

proc routing::envfrom {ctx argv} {
    $ctx unsetpriv
    $ctx setpriv from [lindex $argv 0]
    $ctx setpriv fromArgs [lrange $argv 1 end]
    $ctx setpriv rcpts {}
    return SMFIS_CONTINUE
}

proc routing::envrcpt {ctx argv} {
    $ctx setpriv rcpts [linsert [$ctx getpriv rcpts] end [lindex $argv 0]]
    return SMFIS_CONTINUE
}

proc routing::eom {ctx} {
    variable redirect
    variable archive
    variable archiveArgs
    variable masqueradePattern
    variable mainDomain

    set present {}
    foreach rcpt [$ctx getpriv rcpts] {
	lappend present [Bare $rcpt]
    }

    # Redirect role addresses.  delrcpt needs the address exactly as the
    # MTA sent it, so the original spelling is used.
    foreach rcpt [$ctx getpriv rcpts] {
	set bare [Bare $rcpt]
	if {[dict exists $redirect $bare]} {
	    set target [dict get $redirect $bare]
	    $ctx delrcpt $rcpt
	    if {$target ni $present} {
		$ctx addrcpt <$target>
		lappend present $target
	    }
	}
    }

    # The archive copy.
    if {$archive ni $present} {
	try {
	    $ctx addrcpt <$archive> $archiveArgs
	} trap {MILTER CONTEXT ACTION} {} {
	    $ctx addrcpt <$archive>
	}
    }

    # Masquerade the sender; keep its ESMTP parameters (BODY=, ...).
    set from [Bare [$ctx getpriv from]]
    set at [string last @ $from]
    if {$at > 0 && [string match $masqueradePattern \
	    [string range $from $at+1 end]]} {
	set local [string range $from 0 $at-1]
	$ctx chgfrom <$local@$mainDomain> [join [$ctx getpriv fromArgs]]
    }
    return SMFIS_CONTINUE
}

foreach event {envfrom envrcpt eom} {
    milter register $event routing::$event
}
milter main
