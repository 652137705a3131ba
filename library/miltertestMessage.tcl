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

# ::milter::test::MessageSteps --
#
#	Send commands of one kind in a message, each preceded by the
#	stage's macros from -macros, until a verdict ends the message.
#
# Arguments:
#	id		session number
#	macros		dict: stage letter -> name/value dict
#	letter		the command
#	payloads	one payload per command to send
#	resultVar	variable that gets the last command's result
#
# Results:
#	1 when the milter's answer ends the message, else 0.

proc ::milter::test::MessageSteps {id macros letter payloads resultVar} {
    variable finalActions
    upvar 1 $resultVar result
    foreach payload $payloads {
	if {[dict exists $macros $letter]} {
	    SendMacros $id $letter [dict get $macros $letter]
	}
	set result [Command $id $letter $payload]
	if {[dict get $result action] in $finalActions} {
	    return 1
	}
    }
    return 0
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
    variable finalActions
    set opts [dict create -from <sender@example.org> -fromargs {} \
	    -rcpt {<rcpt@example.org>} -rcptargs {} -text {} -file {} \
	    -macros {} -abort 0]
    CheckPairs $args "$st(cmd) message ?-option value ...?"
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

    set rejected {}
    set size $st(chunksize)
    set chunks {}
    for {set i 0} {$i < [string length $body]} {incr i $size} {
	lappend chunks [string range $body $i [expr {$i + $size - 1}]]
    }

    # One pass; "break" at the first verdict that ends the message, with
    # stage naming where.
    while 1 {
	set stage envfrom
	if {[MessageSteps $id $macros M [list [EncodeArgv $id \
		[list [dict get $opts -from] {*}[dict get $opts -fromargs]]]] \
		result]} {
	    break
	}

	# A rejected recipient only drops that recipient; the message ends
	# when all are rejected or on any other final verdict.
	set stage envrcpt
	set accepted 0
	set lastRejection {}
	set stopped 0
	foreach rcpt [dict get $opts -rcpt] {
	    set rcptArgs {}
	    if {[dict exists [dict get $opts -rcptargs] $rcpt]} {
		set rcptArgs [dict get [dict get $opts -rcptargs] $rcpt]
	    }
	    MessageSteps $id $macros R [list [EncodeArgv $id \
		    [list $rcpt {*}$rcptArgs]]] result
	    set action [dict get $result action]
	    if {$action in {reject tempfail replycode}} {
		lappend rejected $rcpt
		set lastRejection $result
	    } elseif {$action in $finalActions} {
		set stopped 1
		break
	    } else {
		incr accepted
	    }
	}
	if {$stopped} {
	    break
	}
	if {$accepted == 0 && [llength [dict get $opts -rcpt]]} {
	    set result $lastRejection
	    break
	}

	set stage data
	if {[MessageSteps $id $macros T {{}} result]} {
	    break
	}
	set stage header
	set packets {}
	foreach header $headers {
	    lappend packets [join $header \0]\0
	}
	if {[MessageSteps $id $macros L $packets result]} {
	    break
	}
	set stage eoh
	if {[MessageSteps $id $macros N {{}} result]} {
	    break
	}
	set stage body
	if {[MessageSteps $id $macros B $chunks result]} {
	    break
	}
	set stage eom
	MessageSteps $id $macros E {{}} result
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
