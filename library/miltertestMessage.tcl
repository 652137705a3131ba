# miltertestMessage.tcl --
#
#	Part of the package milter::test (see miltertest.tcl, which sources
#	this file): whole messages.
#	Splitting an RFC 5322 message the way an MTA presents it, and the
#	"message" subcommand that sends it as one transaction.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

# ::milter::test::ParseMessage --
#
#	Split an RFC 5322 message into headers and body the way an MTA
#	presents them to a milter: folded header lines are joined with LF,
#	the name ends at the first colon, one leading space is removed from
#	the value unless keepSpace is set, and body line ends become CRLF.
#
# Arguments:
#	bytes		the message, a byte string
#	keepSpace	true when SMFIP_HDR_LEADSPC was negotiated
#
# Results:
#	A list {headers body}; headers is a list of {name value} byte
#	strings.

proc ::milter::test::ParseMessage {bytes keepSpace} {
    set headers {}
    set pos 0
    set len [string length $bytes]
    set name {}
    while {$pos < $len} {
	set nl [string first \n $bytes $pos]
	if {$nl < 0} {
	    set line [string range $bytes $pos end]
	    set next $len
	} else {
	    set line [string range $bytes $pos $nl-1]
	    set next [expr {$nl + 1}]
	}
	if {[string index $line end] eq "\r"} {
	    set line [string range $line 0 end-1]
	}
	if {$line eq ""} {
	    # The empty line between the header and the body.
	    set pos $next
	    break
	}
	if {[string index $line 0] in {" " "\t"}} {
	    if {$name eq ""} {
		break
	    }
	    append value \n $line
	    set pos $next
	    continue
	}
	if {![regexp {^([^\s:]+)[ \t]*:(.*)$} $line -> newName newValue]} {
	    # Not a header line: the body starts here.
	    break
	}
	if {$name ne ""} {
	    lappend headers [list $name $value]
	}
	set name $newName
	set value $newValue
	set pos $next
    }
    if {$name ne ""} {
	lappend headers [list $name $value]
    }
    if {!$keepSpace} {
	set result {}
	foreach header $headers {
	    lassign $header name value
	    if {[string index $value 0] eq " "} {
		set value [string range $value 1 end]
	    }
	    lappend result [list $name $value]
	}
	set headers $result
    }
    set body [string range $bytes $pos end]
    set body [string map [list \n \r\n] [string map [list \r\n \n] $body]]
    return [list $headers $body]
}

# ::milter::test::Cmd_message --
#
#	Run one whole transaction as Postfix does: MAIL, RCPT for each
#	recipient, DATA, the headers, EOH, the body in chunks, EOM, and
#	ABORT afterwards when -abort is true.  Stops at the first final
#	verdict.
#
# Arguments:
#	id	session number
#	args	options
#
# Results:
#	A result dict with the key stage (and rejected, the recipients the
#	milter rejected).

proc ::milter::test::Cmd_message {id args} {
    upvar #0 [namespace current]::S$id st
    set opts [dict create -from <sender@example.org> -fromargs {} \
	    -rcpt {<rcpt@example.org>} -rcptargs {} -text {} -file {} \
	    -macros {} -abort 0]
    if {[llength $args] % 2} {
	return -code error -errorcode {TCL WRONGARGS} "wrong # args: should\
		be \"$st(cmd) message ?-option value ...?\""
    }
    foreach {option value} $args {
	dict set opts [tcl::prefix match -message option \
		[dict keys $opts] $option] $value
    }
    if {[dict get $opts -text] ne "" && [dict get $opts -file] ne ""} {
	Throw USAGE "-text and -file cannot be used together"
    }
    if {![string is boolean -strict [dict get $opts -abort]]} {
	Throw USAGE "bad value \"[dict get $opts -abort]\" for -abort:\
		must be a boolean"
    }
    set macros {}
    if {[catch {dict size [dict get $opts -macros]}]} {
	Throw USAGE "-macros must be a dict of stage and name-value dict"
    }
    dict for {stage dict} [dict get $opts -macros] {
	set letter [StageLetter $stage]
	if {$letter in {C H U}} {
	    Throw USAGE "macro stage \"$stage\" is not part of a message"
	}
	dict set macros $letter $dict
    }
    if {[dict get $opts -file] ne ""} {
	if {[catch {
	    set f [::open [dict get $opts -file] rb]
	    set bytes [::read $f]
	    close $f
	} msg]} {
	    Throw USAGE "cannot read message file: $msg"
	}
    } else {
	set bytes [Encode $id [dict get $opts -text]]
    }
    lassign [ParseMessage $bytes [expr {$st(protocol) & 0x100000}]] \
	    headers body

    set final {accept reject tempfail discard replycode shutdown connfail}
    set rejected {}
    set stage {}
    set result {}

    # A small helper: send the macros for a stage, if any were given.
    set sendMacros {{id macros letter} {
	if {[dict exists $macros $letter]} {
	    ::milter::test::SendMacros $id $letter [dict get $macros $letter]
	}
    }}

    while 1 {
	apply $sendMacros $id $macros M
	set result [Command $id M [EncodeArgv $id \
		[list [dict get $opts -from] {*}[dict get $opts -fromargs]]]]
	if {[dict get $result action] in $final} {
	    set stage envfrom
	    break
	}

	set accepted 0
	set lastRejection {}
	set stopped 0
	foreach rcpt [dict get $opts -rcpt] {
	    apply $sendMacros $id $macros R
	    set rcptArgs {}
	    if {[dict exists [dict get $opts -rcptargs] $rcpt]} {
		set rcptArgs [dict get [dict get $opts -rcptargs] $rcpt]
	    }
	    set result [Command $id R [EncodeArgv $id \
		    [list $rcpt {*}$rcptArgs]]]
	    set action [dict get $result action]
	    if {$action in {reject tempfail replycode}} {
		lappend rejected $rcpt
		set lastRejection $result
	    } elseif {$action in $final} {
		set stopped 1
		break
	    } else {
		incr accepted
	    }
	}
	if {$stopped} {
	    set stage envrcpt
	    break
	}
	if {$accepted == 0 && [llength [dict get $opts -rcpt]]} {
	    set result $lastRejection
	    set stage envrcpt
	    break
	}

	apply $sendMacros $id $macros T
	set result [Command $id T {}]
	if {[dict get $result action] in $final} {
	    set stage data
	    break
	}

	set stopped 0
	foreach header $headers {
	    apply $sendMacros $id $macros L
	    set result [Command $id L [join $header \0]\0]
	    if {[dict get $result action] in $final} {
		set stopped 1
		break
	    }
	}
	if {$stopped} {
	    set stage header
	    break
	}

	apply $sendMacros $id $macros N
	set result [Command $id N {}]
	if {[dict get $result action] in $final} {
	    set stage eoh
	    break
	}

	set stopped 0
	set size $st(chunksize)
	for {set i 0} {$i < [string length $body]} {incr i $size} {
	    apply $sendMacros $id $macros B
	    set result [Command $id B \
		    [string range $body $i [expr {$i + $size - 1}]]]
	    if {[dict get $result action] in $final} {
		set stopped 1
		break
	    }
	}
	if {$stopped} {
	    set stage body
	    break
	}

	apply $sendMacros $id $macros E
	set result [Command $id E {}]
	set stage eom
	break
    }
    if {[dict get $opts -abort]} {
	Cmd_abort $id
    }
    set st(skip) {}
    dict set result stage $stage
    dict set result rejected $rejected
    return $result
}
