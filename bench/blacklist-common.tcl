# blacklist-common.tcl --
#
#	What the benchmark's two TclMilter milters, blacklist-bench.tcl and
#	slowlookup-bench.tcl, share: the local blacklist and the header and
#	eom callbacks of what bench/cmilter.c does. They read this text (it
#	is not sourced) into the script that the owner evaluates and that
#	with -workers is also every worker's -workerinit; each adds its own
#	envfrom callback.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

foreach address {friend@public.com spammer@spamdomain.com} {
    dict set ::listed $address 1
}

# is_blacklisted --
#
#	Takes an envelope argument ("<a@b>") or a From: value ("Name <a@b>"
#	or "a@b") and tells whether its address is on the local blacklist.

proc is_blacklisted {value} {
    if {![regexp {<([^>]*)>} $value -> address]} {
	set address [string trim $value]
    }
    return [dict exists $::listed [string tolower $address]]
}

proc bl_header {ctx name value} {
    if {[string equal -nocase $name From] && [is_blacklisted $value]} {
	$ctx setreply 550 5.7.1 "Sender is blacklisted"
	return SMFIS_REJECT
    }
    return SMFIS_CONTINUE
}

proc bl_eom {ctx} {
    $ctx addheader X-Scanned tclmilter
    return SMFIS_CONTINUE
}
