#!/usr/bin/env tclsh
# greylist.tcl --
#
#	A greylisting milter for Postfix and Sendmail, written on TclMilter:
#	greylisting of (client network, sender, recipient) triplets with an
#	auto-whitelist, DNSBL checks, per-sender and per-client rate limits,
#	whitelists by network, domain and authenticated sender, its state in
#	SQLite (one host) or PostgreSQL (several milter hosts behind several
#	MTAs).  See README.md beside this file.
#
#	Usage:
#	    tclsh greylist.tcl ?-config FILE? ?-check? ?-SETTING VALUE ...?
#
#	FILE (default /etc/greylist/greylist.conf, if it exists) holds
#	"setting value" pairs, # comments allowed; -SETTING VALUE on the
#	command line overrides the file.  greylist.conf beside this script
#	documents every setting.  The milter logs a line "ready on ADDRESS"
#	once it listens.  -check prints the resulting settings and exits.
#	Exit status 2: bad configuration.
#
#	The callbacks (greylib.tcl) run in -workers interpreters as
#	coroutines; each has a thread of its own for the database
#	(greydb.tcl), so that neither a slow DNS nor a slow database blocks
#	anything but the messages that wait for it, and neither can hold up
#	the MTA for longer than its timeout.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1

namespace eval ::greyconf {
    # setting -> {default type}; the types are checked by check.
    variable settings {
	name			{greylist name}
	connection		{unix:/var/run/milter/greylist.sock string}
	socket_mode		{0660 mode}
	workers			{4 count}
	log_file		{{} string}
	log_level		{info level}
	database		{sqlite {enum sqlite postgres}}
	sqlite_file		{/var/lib/greylist/greylist.db string}
	pg_host			{127.0.0.1 string}
	pg_port			{5432 port}
	pg_database		{greylist string}
	pg_user			{greylist string}
	pg_password		{{} string}
	db_timeout		{2000 ms}
	db_retry		{1000 ms}
	db_failure		{tempfail {enum tempfail accept}}
	delay			{300 seconds}
	retry_window		{172800 seconds}
	expiry			{3024000 seconds}
	awl_count		{5 count}
	ipv4_prefix		{24 {range 1 32}}
	ipv6_prefix		{64 {range 1 128}}
	whitelist_networks	{{127.0.0.0/8 ::1/128} networks}
	whitelist_client_domains {{} list}
	whitelist_sender_domains {{} list}
	whitelist_auth		{1 boolean}
	dnsbl_zones		{{} zones}
	dnsbl_threshold		{2 number}
	dnsbl_nameserver	{127.0.0.1 string}
	dnsbl_port		{53 port}
	dnsbl_timeout		{2000 ms}
	dnsbl_cache		{300 seconds}
	rate_sender		{{} rate}
	rate_client		{{} rate}
	header			{1 boolean}
	cleanup_interval	{3600 seconds}
    }
}

# greyconf::check --
#	Check one value against its type; an error saying what is wrong.

proc ::greyconf::check {name value} {
    variable settings
    set type [lindex [dict get $settings $name] 1]
    set bad "bad value \"$value\" for $name"
    switch -- [lindex $type 0] {
	name - string {
	    if {[lindex $type 0] eq "name" && $value eq ""} {
		error "$bad: must not be empty"
	    }
	}
	mode {
	    if {![regexp {^0?[0-7]{3}$} $value]} {
		error "$bad: must be an octal mode such as 0660"
	    }
	}
	count - seconds - ms {
	    if {![string is entier -strict $value] || $value < 0} {
		error "$bad: must be an integer >= 0"
	    }
	}
	port {
	    if {![string is integer -strict $value] || $value < 1
		    || $value > 65535} {
		error "$bad: must be an integer from 1 to 65535"
	    }
	}
	range {
	    lassign $type - lo hi
	    if {![string is integer -strict $value] || $value < $lo
		    || $value > $hi} {
		error "$bad: must be an integer from $lo to $hi"
	    }
	}
	number {
	    if {![string is double -strict $value]} {
		error "$bad: must be a number"
	    }
	}
	boolean {
	    if {![string is boolean -strict $value]} {
		error "$bad: must be a boolean"
	    }
	}
	level {
	    if {$value ni {debug info notice warning error}} {
		error "$bad: must be debug, info, notice, warning or error"
	    }
	}
	enum {
	    if {$value ni [lrange $type 1 end]} {
		error "$bad: must be [join [lrange $type 1 end] { or }]"
	    }
	}
	list {
	    if {[catch {llength $value}]} {
		error "$bad: must be a list"
	    }
	}
	networks {
	    if {[catch {llength $value}]} {
		error "$bad: must be a list"
	    }
	    foreach cidr $value {
		if {[catch {::greylist::net::parse $cidr} msg]} {
		    error "$bad: $msg"
		}
	    }
	}
	zones {
	    if {[catch {llength $value}]} {
		error "$bad: must be a list"
	    }
	    foreach zone $value {
		if {[catch {lassign $zone z action weight}]
			|| [llength $zone] < 2 || [llength $zone] > 3
			|| $action ni {reject tag score}
			|| ($weight ne "" && ($action ne "score"
			    || ![string is double -strict $weight]))} {
		    error "$bad: each zone must be {ZONE reject}, {ZONE\
			    tag} or {ZONE score ?WEIGHT?}"
		}
	    }
	}
	rate {
	    if {[catch {llength $value} n] || ($n != 0 && ($n != 2
		    || ![string is integer -strict [lindex $value 0]]
		    || ![string is integer -strict [lindex $value 1]]
		    || [lindex $value 0] < 1 || [lindex $value 1] < 1))} {
		error "$bad: must be empty or {MESSAGES SECONDS}"
	    }
	}
    }
    return
}

# greyconf::read --
#	The settings of a configuration file as a dict (only those it
#	sets).  The file is "setting value" pairs; a line whose first
#	non-blank character is # is a comment.  Values are Tcl words (use
#	braces for lists, which may span lines).

proc ::greyconf::read {file} {
    variable settings
    set f [open $file r]
    set text [::read $f]
    ::close $f
    set lines {}
    foreach line [split $text \n] {
	if {![string match #* [string trimleft $line]]} {
	    lappend lines $line
	}
    }
    set text [join $lines \n]
    if {[catch {llength $text} n] || $n % 2} {
	error "$file: not a list of setting value pairs"
    }
    set result {}
    foreach {name value} $text {
	if {![dict exists $settings $name]} {
	    error "$file: unknown setting \"$name\""
	}
	dict set result $name $value
    }
    return $result
}

# greyconf::load --
#	The whole configuration: defaults, then the file, then the
#	command line's -setting value pairs.  Every value is checked.

proc ::greyconf::load {argv} {
    variable settings
    set file ""
    set overrides {}
    set i [lsearch -exact $argv -check]
    if {$i >= 0} {
	set argv [lreplace $argv $i $i]
    }
    foreach {option value} $argv {
	if {$option eq "-config"} {
	    set file $value
	    continue
	}
	set name [string range $option 1 end]
	if {![string match -* $option] || ![dict exists $settings $name]} {
	    error "unknown option \"$option\""
	}
	dict set overrides $name $value
    }
    if {[llength $argv] % 2} {
	error "missing value for \"[lindex $argv end]\""
    }
    if {$file eq "" && [file exists /etc/greylist/greylist.conf]} {
	set file /etc/greylist/greylist.conf
    }
    set cfg {}
    dict for {name spec} $settings {
	dict set cfg $name [lindex $spec 0]
    }
    if {$file ne ""} {
	set cfg [dict merge $cfg [read $file]]
    }
    set cfg [dict merge $cfg $overrides]
    dict for {name value} $cfg {
	check $name $value
    }
    return $cfg
}

# The callbacks and their helpers; workers source the same file.
set greyDir [file dirname [file normalize [info script]]]
source [file join $greyDir greylib.tcl]

if {[catch {::greyconf::load $argv} cfg]} {
    puts stderr "greylist: $cfg"
    puts stderr "usage: [file tail [info script]] ?-config FILE? ?-check?\
	    ?-SETTING VALUE ...?"
    exit 2
}
if {"-check" in $argv} {
    dict for {name value} $cfg {
	puts [list $name $value]
    }
    exit 0
}

greylist::init $cfg

# Workers: the same callbacks, in interpreters of their own.
set workerInit [string map [list @DIR@ [list $greyDir] @CFG@ [list $cfg]] {
    source [file join @DIR@ greylib.tcl]
    greylist::init @CFG@
}]

milter configure -name [dict get $cfg name] \
	-connection [dict get $cfg connection] \
	-socketmode [dict get $cfg socket_mode] \
	-coroutines 1 \
	-defaultreply [expr {[dict get $cfg db_failure] eq "accept"
		? "SMFIS_CONTINUE" : "SMFIS_TEMPFAIL"}] \
	-logcommand ::greylist::milterlog
if {[dict get $cfg workers] > 0} {
    milter configure -workers [dict get $cfg workers] \
	    -workerinit $workerInit
}
milter register connect ::greylist::connect
milter register envfrom ::greylist::envfrom
milter register envrcpt ::greylist::envrcpt
milter register eom ::greylist::eom
milter register abort ::greylist::abort
milter register close ::greylist::closed

# Expired rows go every cleanup_interval seconds (0: never).
proc ::greylist::schedule {} {
    set interval [dict get $::greylist::cfg cleanup_interval]
    if {$interval > 0} {
	after [expr {$interval * 1000}] {
	    coroutine ::greylist::maintainer[incr ::greylist::runs] \
		    ::greylist::maintain
	    ::greylist::schedule
	}
    }
}
::greylist::schedule

if {[catch {milter start} msg]} {
    greylist::log error "cannot start: $msg"
    exit 1
}
greylist::log notice "ready on [milter address] ([dict get $cfg database],\
	[dict get $cfg workers] workers)"
milter main
