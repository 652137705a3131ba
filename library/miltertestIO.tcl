# miltertestIO.tcl --
#
#	Part of the package milter::test (see miltertest.tcl, which sources
#	this file): the connection and
#	packet layer.  Opening the channel and negotiating, waiting for
#	packets without blocking the event loop, encoding and sending
#	commands and macros, and reading a command's replies into a result
#	dict.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

# ::milter::test::Connect --
#
#	Open the channel to the milter, without blocking the event loop,
#	and install the readable handler.
#
# Arguments:
#	id	session number
#	spec	the connection spec
#
# Results:
#	None.

proc ::milter::test::Connect {id spec} {
    variable unixconnect
    variable relay
    upvar #0 [namespace current]::S$id st
    set wake [namespace current]::S${id}(wake)

    if {[regexp {^(?:unix|local):(.+)$} $spec -> path]
	    || [regexp {^(/.*)$} $spec -> path]} {
	set kind unix
    } elseif {[regexp {^inet:(\d+)(?:@(.*))?$} $spec -> port host]} {
	set kind inet
	if {$host eq ""} {
	    set host 127.0.0.1
	}
    } elseif {[regexp {^inet6:(\d+)(?:@(.*))?$} $spec -> port host]} {
	set kind inet
	regexp {^\[(.*)\]$} $host -> host
	if {$host eq ""} {
	    set host ::1
	}
    } else {
	Throw USAGE "invalid connection spec \"$spec\": must be unix:PATH,\
		local:PATH, inet:PORT@HOST or inet6:PORT@HOST"
    }

    if {$kind eq "inet"} {
	if {$port < 1 || $port > 65535} {
	    Throw USAGE "invalid port \"$port\" in connection spec \"$spec\""
	}
	if {[catch {socket -async $host $port} chan]} {
	    Throw CONNECT "cannot connect to \"$spec\": $chan"
	}
	set st(chan) $chan
	chan configure $chan -blocking 0 -translation binary \
		-buffering full
	chan event $chan writable [list set $wake 1]
	set deadline [Deadline $st(timeout)]
	while {[chan configure $chan -connecting]} {
	    if {![WaitEvent $id $deadline]} {
		Throw CONNECT "cannot connect to \"$spec\": timed out\
			after $st(timeout) ms"
	    }
	}
	chan event $chan writable {}
	set err [chan configure $chan -error]
	if {$err ne ""} {
	    Throw CONNECT "cannot connect to \"$spec\": $err"
	}
	chan event $chan readable [list [namespace current]::Readable $id]
	return
    }

    # Unix-domain socket: a connector command if there is one (loading
    # milter::test creates ::milter::test::unixsocket from the TclMilter
    # shared library), else a perl relay.
    set connector $unixconnect
    if {![llength $connector]
	    && [llength [info commands ::milter::test::unixsocket]]} {
	set connector ::milter::test::unixsocket
    }
    if {[llength $connector]} {
	if {[catch {{*}$connector $path} chan]} {
	    Throw CONNECT "cannot connect to \"$spec\": $chan"
	}
	set st(chan) $chan
	chan configure $chan -blocking 0 -translation binary \
		-buffering full
	chan event $chan readable [list [namespace current]::Readable $id]
	return
    }
    set perl [auto_execok perl]
    if {$perl eq ""} {
	Throw CONNECT "cannot connect to \"$spec\": unix-domain sockets\
		need perl or milter::test::unixconnect"
    }
    if {[catch {::open |[list {*}$perl -e $relay -- $path] r+} chan]} {
	Throw CONNECT "cannot connect to \"$spec\": $chan"
    }
    set st(chan) $chan
    chan configure $chan -blocking 0 -translation binary -buffering full
    chan event $chan readable [list [namespace current]::Readable $id]
    set deadline [Deadline $st(timeout)]
    while {[set nl [string first \n $st(buf)]] < 0} {
	if {$st(eof)} {
	    Throw CONNECT "cannot connect to \"$spec\": relay exited"
	}
	if {![WaitEvent $id $deadline]} {
	    Throw CONNECT "cannot connect to \"$spec\": timed out\
		    after $st(timeout) ms"
	}
    }
    set status [string range $st(buf) 0 $nl-1]
    set st(buf) [string range $st(buf) $nl+1 end]
    if {$status ne "ok"} {
	regsub {^error } $status {} status
	Throw CONNECT "cannot connect to \"$spec\": [string tolower $status]"
    }
}

# ::milter::test::Negotiate --
#
#	Send OPTNEG, read and check the reply.
#
# Arguments:
#	id	session number
#
# Results:
#	None; the negotiated values are stored in the session.

proc ::milter::test::Negotiate {id} {
    variable stageNumbers
    upvar #0 [namespace current]::S$id st
    Send $id O [binary format III $st(offeredVersion) \
	    $st(offeredActions) $st(offeredProtocol)]
    lassign [NextPacket $id] cmd data
    if {$cmd ne "O"} {
	Throw {PROTOCOL OPTNEG} "expected an option negotiation reply,\
		got [Describe $cmd]"
    }
    if {[binary scan $data IuIuIu version actions protocol] != 3} {
	Throw {PROTOCOL OPTNEG} "option negotiation reply too short:\
		[string length $data] bytes"
    }
    if {$version > $st(offeredVersion) || $version < 2} {
	Throw {PROTOCOL VERSION} "milter replied with protocol version\
		$version, offered $st(offeredVersion)"
    }
    # An offer of 0 means the protocol version 1 defaults, as libmilter
    # and TclMilter read it.
    set offeredActions [expr {$st(offeredActions) ? $st(offeredActions) : 0x0F}]
    set offeredProtocol [expr {$st(offeredProtocol) ? $st(offeredProtocol) : 0x3F}]
    set extra [expr {$actions & ~$offeredActions}]
    if {$extra} {
	Throw {PROTOCOL ACTIONS} "milter requested actions that were not\
		offered: [FlagNames actionBits $extra]"
    }
    set extra [expr {$protocol & ~$offeredProtocol}]
    if {$extra} {
	Throw {PROTOCOL FLAGS} "milter requested protocol flags that were\
		not offered: [FlagNames protocolBits $extra]"
    }

    # Macro lists: uint32 stage, then a NUL-terminated list of names.
    set macros {}
    set rest [string range $data 12 end]
    while {$rest ne ""} {
	if {[binary scan $rest Iu stage] != 1} {
	    Throw {PROTOCOL OPTNEG} "truncated macro list in option\
		    negotiation reply"
	}
	set end [string first \0 $rest 4]
	if {$end < 0} {
	    Throw {PROTOCOL OPTNEG} "macro list for stage $stage in option\
		    negotiation reply is not nul-terminated"
	}
	set names [string range $rest 4 $end-1]
	set rest [string range $rest $end+1 end]
	if {[dict exists $stageNumbers $stage]} {
	    set stage [dict get $stageNumbers $stage]
	}
	dict set macros $stage [regexp -all -inline {[^\s,]+} $names]
    }
    set st(version) $version
    set st(actions) $actions
    set st(protocol) $protocol
    set st(macros) $macros
}

# ::milter::test::Deadline --
#
#	Turn a timeout in milliseconds into an absolute deadline (0 means
#	no deadline).
#
# Arguments:
#	timeout	milliseconds, 0 for none
#
# Results:
#	The deadline in [clock milliseconds] units, or 0.

proc ::milter::test::Deadline {timeout} {
    if {$timeout <= 0} {
	return 0
    }
    return [expr {[clock milliseconds] + $timeout}]
}

# ::milter::test::WaitEvent --
#
#	Run the event loop until the session's readable (or writable)
#	handler reports something or the deadline passes.  Uses vwait, so
#	other event handlers (including a milter running in this thread)
#	keep running, and nested waits work.
#
# Arguments:
#	id		session number
#	deadline	absolute deadline, 0 for none
#
# Results:
#	1 if woken by the channel, 0 if the deadline has passed.

proc ::milter::test::WaitEvent {id deadline} {
    set var [namespace current]::S${id}(wake)
    if {$deadline} {
	set left [expr {$deadline - [clock milliseconds]}]
	if {$left <= 0} {
	    return 0
	}
	set timer [after $left [list set $var 0]]
    }
    set $var -1
    vwait $var
    if {[info exists timer]} {
	after cancel $timer
    }
    if {![info exists $var]} {
	# The session was destroyed while we waited.
	Throw EOF "session closed while waiting"
    }
    if {[set $var] == 0} {
	return [expr {$deadline == 0 || [clock milliseconds] < $deadline}]
    }
    return 1
}

# ::milter::test::Readable --
#
#	Readable handler: append whatever the milter sent to the session's
#	buffer and wake the waiter.
#
# Arguments:
#	id	session number
#
# Results:
#	None.

proc ::milter::test::Readable {id} {
    upvar #0 [namespace current]::S$id st
    if {![info exists st(chan)]} {
	return
    }
    if {[catch {::read $st(chan)} data]} {
	set st(readerror) $data
	set st(eof) 1
    } else {
	append st(buf) $data
	if {[chan eof $st(chan)]} {
	    set st(eof) 1
	}
    }
    if {$st(eof)} {
	chan event $st(chan) readable {}
    }
    set st(wake) 1
}

# ::milter::test::TakePacket --
#
#	Cut one complete packet off the front of the session's buffer.
#
# Arguments:
#	id	session number
#
# Results:
#	{} when no complete packet is buffered, else {command data}.

proc ::milter::test::TakePacket {id} {
    upvar #0 [namespace current]::S$id st
    if {[binary scan $st(buf) Iu len] != 1} {
	return {}
    }
    if {$len == 0} {
	Throw {PROTOCOL FRAMING} "milter sent a packet with length 0"
    }
    if {[string length $st(buf)] < $len + 4} {
	return {}
    }
    set cmd [string index $st(buf) 4]
    set data [string range $st(buf) 5 [expr {$len + 3}]]
    set st(buf) [string range $st(buf) [expr {$len + 4}] end]
    return [list $cmd $data]
}

# ::milter::test::NextPacket --
#
#	Wait for the next packet from the milter.
#
# Arguments:
#	id	session number
#	timeout	milliseconds to wait (default: the session's -timeout;
#		0 waits for ever)
#
# Results:
#	A list {command data}.

proc ::milter::test::NextPacket {id {timeout {}}} {
    upvar #0 [namespace current]::S$id st
    if {$timeout eq ""} {
	set timeout $st(timeout)
    }
    set deadline [Deadline $timeout]
    while 1 {
	set packet [TakePacket $id]
	if {[llength $packet]} {
	    return $packet
	}
	if {$st(eof)} {
	    if {$st(buf) ne ""} {
		Throw EOF "connection closed by milter in the middle of a\
			packet"
	    }
	    if {$st(readerror) ne ""} {
		Throw EOF "connection closed by milter: $st(readerror)"
	    }
	    Throw EOF "connection closed by milter"
	}
	if {![WaitEvent $id $deadline]} {
	    Throw TIMEOUT "timed out after $timeout ms waiting for the milter"
	}
    }
}

# ::milter::test::SendRaw --
#
#	Queue bytes for the milter and start flushing them.  The channel is
#	non-blocking, so this never waits for the milter to read.
#
# Arguments:
#	id	session number
#	bytes	a byte string
#
# Results:
#	None.

proc ::milter::test::SendRaw {id bytes} {
    upvar #0 [namespace current]::S$id st
    if {$st(eof)} {
	Throw EOF "connection closed by milter"
    }
    if {[catch {
	puts -nonewline $st(chan) $bytes
	flush $st(chan)
    } msg]} {
	Throw EOF "cannot write to milter: $msg"
    }
}

# ::milter::test::Send --
#
#	Send one packet.
#
# Arguments:
#	id	session number
#	cmd	the command character
#	data	the payload, a byte string
#
# Results:
#	None.

proc ::milter::test::Send {id cmd data} {
    SendRaw $id [binary format I [expr {[string length $data] + 1}]]$cmd$data
}

# ::milter::test::Encode, EncodeArgv --
#
#	Convert a string (or a list of them, each NUL-terminated) to bytes
#	with the session's encoding.
#
# Arguments:
#	id	session number
#	string / list
#
# Results:
#	A byte string.

proc ::milter::test::Encode {id string} {
    upvar #0 [namespace current]::S$id st
    return [encoding convertto $st(encoding) $string]
}

proc ::milter::test::EncodeArgv {id list} {
    set bytes {}
    foreach item $list {
	append bytes [Encode $id $item] \0
    }
    return $bytes
}

# ::milter::test::Describe --
#
#	Name a reply command character for an error message.
#
# Arguments:
#	cmd	the character
#
# Results:
#	E.g. {reply "Z" (0x5a)}.

proc ::milter::test::Describe {cmd} {
    if {$cmd eq ""} {
	return "an empty reply"
    }
    scan $cmd %c code
    if {$code >= 0x21 && $code < 0x7f} {
	return [format {reply "%s" (0x%02x)} $cmd $code]
    }
    return [format {reply 0x%02x} $code]
}

# ::milter::test::Result --
#
#	Build a result dict.
#
# Arguments:
#	action	the action word
#	reply	the reply text (replycode only)
#	mods	list of modifications
#	progress number of progress packets
#
# Results:
#	The dict.

proc ::milter::test::Result {action {reply {}} {mods {}} {progress 0}} {
    set code {}
    set lines {}
    if {$reply ne ""} {
	set lines [split [string map [list \r\n \n] $reply] \n]
	regexp {^([2-5][0-9][0-9])(?:[ -]|$)} $reply -> code
    }
    return [dict create action $action reply $reply lines $lines \
	    code $code modifications $mods progress $progress]
}

# ::milter::test::Strings --
#
#	Split a payload made of NUL-terminated strings.
#
# Arguments:
#	id	session number
#	data	the payload
#	min max	how many strings are allowed
#	what	name of the packet, for messages
#
# Results:
#	The list of strings, decoded with the session's encoding.

proc ::milter::test::Strings {id data min max what} {
    upvar #0 [namespace current]::S$id st
    if {[string index $data end] ne "\0"} {
	Throw {PROTOCOL MALFORMED} "malformed $what packet: not\
		nul-terminated"
    }
    set list [split [string range $data 0 end-1] \0]
    if {[llength $list] < $min || [llength $list] > $max} {
	Throw {PROTOCOL MALFORMED} "malformed $what packet:\
		[llength $list] strings"
    }
    set result {}
    foreach item $list {
	lappend result [encoding convertfrom $st(encoding) $item]
    }
    return $result
}

# ::milter::test::ReadReply --
#
#	Read the milter's answer to a command: any progress and
#	modification packets, then one final reply.
#
# Arguments:
#	id	session number
#	cmd	the command character that was sent
#
# Results:
#	A result dict.

proc ::milter::test::ReadReply {id cmd} {
    variable commands
    variable modifications
    variable finals
    upvar #0 [namespace current]::S$id st
    set event [lindex [dict get $commands $cmd] 0]
    set mods {}
    set progress 0
    set bodyIndex -1
    set body {}
    while 1 {
	lassign [NextPacket $id] reply data
	if {$reply eq "p"} {
	    incr progress
	    continue
	}
	if {[dict exists $modifications $reply]} {
	    lassign [dict get $modifications $reply] name bit
	    set what "\"$reply\" ($name)"
	    if {$cmd ne "E"} {
		Throw {PROTOCOL MODIFICATION} "modification $what received\
			in reply to $event, allowed only at end of message"
	    }
	    if {!($st(actions) & $bit)} {
		Throw {PROTOCOL UNNEGOTIATED} "modification $what needs\
			[FlagNames actionBits $bit], which was not negotiated"
	    }
	    switch -- $name {
		replacebody {
		    if {$bodyIndex < 0} {
			set bodyIndex [llength $mods]
			lappend mods {}
		    }
		    append body $data
		}
		insheader - chgheader {
		    if {[binary scan $data Iu index] != 1} {
			Throw {PROTOCOL MALFORMED} "malformed $what packet:\
				too short"
		    }
		    lappend mods [list $name $index {*}[Strings $id \
			    [string range $data 4 end] 2 2 $what]]
		}
		addheader {
		    lappend mods [list $name {*}[Strings $id $data 2 2 $what]]
		}
		chgfrom - addrcpt_par {
		    set strings [Strings $id $data 1 2 $what]
		    if {[llength $strings] == 1} {
			lappend strings {}
		    }
		    lappend mods [list $name {*}$strings]
		}
		default {
		    lappend mods [list $name {*}[Strings $id $data 1 1 $what]]
		}
	    }
	    continue
	}
	if {![dict exists $finals $reply]} {
	    if {$reply in {O l}} {
		Throw {PROTOCOL REPLY} "unexpected [Describe $reply] to $event"
	    }
	    Throw {PROTOCOL REPLY} "unknown [Describe $reply] to $event"
	}
	set action [dict get $finals $reply]
	set text {}
	switch -- $action {
	    replycode {
		if {[string index $data end] ne "\0"} {
		    Throw {PROTOCOL MALFORMED} "malformed reply \"y\"\
			    (replycode) packet: not nul-terminated"
		}
		set text [encoding convertfrom $st(encoding) \
			[string range $data 0 end-1]]
	    }
	    skip {
		if {!($st(protocol) & 0x400)} {
		    Throw {PROTOCOL UNNEGOTIATED} "skip reply to $event\
			    needs SMFIP_SKIP, which was not negotiated"
		}
		if {$cmd ni {B L R}} {
		    Throw {PROTOCOL REPLY} "unexpected skip reply to $event"
		}
	    }
	}
	if {$bodyIndex >= 0} {
	    lset mods $bodyIndex [list replacebody $body]
	}
	return [Result $action $text $mods $progress]
    }
}

# ::milter::test::Command --
#
#	Send a command that expects a reply, honouring the negotiated
#	protocol: disabled commands are not sent, NR commands are not
#	waited for, and skipped ones are not sent.
#
# Arguments:
#	id	session number
#	cmd	command character
#	data	payload bytes
#
# Results:
#	A result dict.

proc ::milter::test::Command {id cmd data} {
    variable commands
    upvar #0 [namespace current]::S$id st
    lassign [dict get $commands $cmd] event noBit nrBit minVersion
    if {$cmd in {C M}} {
	set st(skip) {}
    }
    if {$st(version) < $minVersion || ($st(protocol) & $noBit)} {
	return [Result disabled]
    }
    if {[dict exists $st(skip) $cmd]} {
	return [Result skipped]
    }
    Send $id $cmd $data
    if {$st(protocol) & $nrBit} {
	return [Result noreply]
    }
    set result [ReadReply $id $cmd]
    if {[dict get $result action] eq "skip"} {
	dict set st(skip) $cmd 1
    }
    if {$cmd eq "E"} {
	set st(skip) {}
    }
    return $result
}

# ::milter::test::StageLetter --
#
#	Map a macro stage name or command letter to the command letter.
#
# Arguments:
#	stage	connect helo envfrom envrcpt data eoh eom header body
#		unknown, or a letter C H M R T N E L B U
#
# Results:
#	The letter.

proc ::milter::test::StageLetter {stage} {
    variable stageLetters
    if {[dict exists $stageLetters $stage]} {
	return [dict get $stageLetters $stage]
    }
    if {$stage in [dict values $stageLetters]} {
	return $stage
    }
    Throw USAGE "bad macro stage \"$stage\": must be one of\
	    [join [dict keys $stageLetters] {, }], or a command letter"
}

# ::milter::test::SendMacros --
#
#	Send a D packet, keeping only the macros the milter asked for when
#	it sent a macro list for that stage.
#
# Arguments:
#	id	session number
#	letter	command letter of the stage
#	macros	dict of name -> value
#	force	send even an empty packet when no list applies
#
# Results:
#	The dict of the macros actually sent.

proc ::milter::test::SendMacros {id letter macros {force 1}} {
    variable stageNumbers
    variable stageLetters
    upvar #0 [namespace current]::S$id st
    if {[catch {dict size $macros}]} {
	Throw USAGE "macros must be a dict of name value pairs"
    }
    set stage [lindex [dict keys [dict filter $stageLetters value $letter]] 0]
    if {[dict exists $st(macros) $stage]} {
	# Compare names without braces; send them spelled as the milter
	# asked for them, since libmilter treats x and {x} as the same
	# name only for one-character names.
	set wanted {}
	foreach name [dict get $st(macros) $stage] {
	    dict set wanted [string trim $name "{}"] $name
	}
	set sent {}
	dict for {name value} $macros {
	    set bare [string trim $name "{}"]
	    if {[dict exists $wanted $bare]} {
		dict set sent [dict get $wanted $bare] $value
	    }
	}
	if {[dict size $sent] == 0} {
	    return {}
	}
    } else {
	set sent $macros
	if {[dict size $sent] == 0 && !$force} {
	    return {}
	}
    }
    set data $letter
    dict for {name value} $sent {
	append data [Encode $id $name] \0 [Encode $id $value] \0
    }
    Send $id D $data
    return $sent
}
