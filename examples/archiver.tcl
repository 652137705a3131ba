#!/usr/bin/env tclsh
# archiver.tcl --
#
#	A message archiver: every message that reaches the end of data is
#	written, byte for byte as the MTA passed it to the milter, to a spool
#	directory, in a file named after the MTA's queue id (the "i" macro).
#	Two envelope lines are written first:
#
#	    X-Envelope-From: <sender>
#	    X-Envelope-To: <rcpt1>, <rcpt2>
#
#	The body is collected in the context's private data across body
#	callbacks.  While the file is written the milter tells the MTA that
#	it is still working (progress), so a slow disk does not make the MTA
#	give up on it.  If the file cannot be written the message is refused
#	with a temporary failure, so nothing is delivered unarchived.
#
#	Header names and values are decoded as ISO 8859-1 (-encoding
#	iso8859-1), which maps every byte to one character and back, and the
#	MTA is asked to keep the space after each header's colon
#	(-leadingspace 1): together they make the archive byte-exact.
#
#	Usage:
#	    tclsh archiver.tcl ?-connection? ?SPEC? ?SPOOLDIR?
#
#	SPEC defaults to unix:/var/run/archiver.sock and SPOOLDIR to
#	/var/spool/tclmilter-archive.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require TclMilter 1.1

namespace eval archiver {
    variable spool /var/spool/tclmilter-archive

    # Messages larger than this are archived only up to this size (the
    # rest of the body is skipped) and marked as truncated.
    variable maxSize [expr {64 * 1024 * 1024}]

    # Write in blocks of this size, and report progress every this many
    # bytes.
    variable block 65536
    variable progressEvery [expr {1024 * 1024}]

    variable counter 0
}

set spec unix:/var/run/archiver.sock
if {[lindex $argv 0] eq "-connection"} {
    set argv [lrange $argv 1 end]
}
if {[llength $argv] > 2} {
    puts stderr "usage: [file tail [info script]] ?-connection? ?spec?\
	    ?spooldir?"
    exit 2
}
if {[llength $argv] >= 1} {
    set spec [lindex $argv 0]
}
if {[llength $argv] == 2} {
    set archiver::spool [lindex $argv 1]
}
file mkdir $archiver::spool

milter configure -name Archiver -connection $spec -encoding iso8859-1 \
	-leadingspace 1

# archiver::FileName --
#
#	A fresh file name in the spool for a queue id.  The id comes from the
#	MTA and is only used after everything but letters, digits, dot, dash
#	and underscore has been removed.

proc archiver::FileName {qid} {
    variable spool
    variable counter
    regsub -all {[^A-Za-z0-9._-]} $qid {} qid
    set qid [string trimleft $qid .]
    if {$qid eq ""} {
	set qid noqueueid-[clock seconds]-[pid]-[incr counter]
    }
    set name [file join $spool $qid.eml]
    set n 0
    while {[file exists $name]} {
	set name [file join $spool $qid-[incr n].eml]
    }
    return $name
}

# archiver::Write --
#
#	Writes the archive file in blocks, sending progress to the MTA as it
#	goes, and renames it into place when it is complete.
#
# Results:
#	The file name.  Errors (disk full, permissions) propagate.

proc archiver::Write {ctx name data} {
    variable block
    variable progressEvery
    set tmp $name.tmp
    set f [open $tmp {WRONLY CREAT EXCL BINARY} 0640]
    try {
	set total [string length $data]
	set sinceProgress 0
	for {set i 0} {$i < $total} {incr i $block} {
	    puts -nonewline $f [string range $data $i [expr {$i + $block - 1}]]
	    incr sinceProgress $block
	    if {$sinceProgress >= $progressEvery} {
		flush $f
		$ctx progress
		set sinceProgress 0
	    }
	}
	close $f
    } on error {msg opts} {
	catch {close $f}
	file delete $tmp
	return -options $opts $msg
    }
    file rename $tmp $name
    return $name
}

# Callbacks.

proc archiver::envfrom {ctx argv} {
    $ctx unsetpriv
    $ctx setpriv from [lindex $argv 0]
    $ctx setpriv rcpts {}
    $ctx setpriv head {}
    $ctx setpriv body {}
    $ctx setpriv truncated 0
    return SMFIS_CONTINUE
}

proc archiver::envrcpt {ctx argv} {
    $ctx setpriv rcpts [linsert [$ctx getpriv rcpts] end [lindex $argv 0]]
    return SMFIS_CONTINUE
}

# header: the value keeps its leading space (-leadingspace 1); folded
# lines arrive joined by LF or CRLF, and are written with CRLF.
proc archiver::header {ctx name value} {
    regsub -all {\r?\n} $value "\r\n" value
    set head [$ctx getpriv head]
    $ctx unsetpriv head
    append head $name : $value \r\n
    $ctx setpriv head $head
    return SMFIS_CONTINUE
}

# body: append the chunk to the body kept in the private data.  Taking
# the value out of the table (getpriv, then unsetpriv) before appending
# leaves the variable as its only user, so append extends it in place
# instead of copying the whole body for every chunk.
proc archiver::body {ctx bytes} {
    variable maxSize
    set body [$ctx getpriv body]
    $ctx unsetpriv body
    append body $bytes
    if {[string length $body] > $maxSize} {
	$ctx setpriv body [string range $body 0 [expr {$maxSize - 1}]]
	$ctx setpriv truncated 1
	return SMFIS_SKIP
    }
    $ctx setpriv body $body
    return SMFIS_CONTINUE
}

proc archiver::eom {ctx} {
    set qid [$ctx getsymval i]
    set data "X-Envelope-From: [$ctx getpriv from]\r\n"
    append data "X-Envelope-To: [join [$ctx getpriv rcpts] {, }]\r\n"
    if {[$ctx getpriv truncated]} {
	append data "X-Archive-Truncated: yes\r\n"
    }
    append data [$ctx getpriv head] \r\n
    # Header text to bytes (one character per byte, see -encoding), then
    # the body, which is bytes already.
    set data [encoding convertto iso8859-1 $data]
    append data [$ctx getpriv body]
    $ctx unsetpriv

    # Writing may take a while: tell the MTA now, then every megabyte.
    $ctx progress
    if {[catch {Write $ctx [FileName $qid] $data} result]} {
	puts stderr "Archiver: cannot archive message $qid: $result"
	$ctx setreply 451 4.3.0 "Cannot archive the message; try again later"
	return SMFIS_TEMPFAIL
    }
    puts "Archiver: $qid -> $result"
    flush stdout
    return SMFIS_CONTINUE
}

proc archiver::abort {ctx} {
    $ctx unsetpriv
    return SMFIS_CONTINUE
}

foreach event {envfrom envrcpt header body eom abort} {
    milter register $event archiver::$event
}
milter main
