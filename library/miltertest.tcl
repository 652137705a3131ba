# miltertest.tcl --
#
#	The package milter::test: the MTA side of the milter protocol
#	(version 2 to 6), written in Tcl, so that milters can be driven from
#	tcltest scripts.  A session connects to a milter, negotiates options
#	and then sends the commands an MTA would send, returning the
#	milter's verdict and the modifications it asked for as dicts.
#
#	The client never blocks the event loop: it uses non-blocking
#	channels, a readable handler and vwait with a timer.  This matters
#	because the milter under test often runs in the same interpreter and
#	thread, with its callbacks dispatched from that thread's event loop.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6

namespace eval ::milter::test {
    namespace export open

    # Number of the last session created.
    variable counter 0

    # Command prefix used to reach unix-domain sockets, which Tcl 8.6
    # cannot open itself.  Called with the socket path appended, it must
    # return a connected read/write channel.  When empty, a small Perl
    # relay is started as a command pipeline.
    variable unixconnect {}

    # SMFIF_* action bits.
    variable actionBits {
	SMFIF_ADDHDRS		0x001
	SMFIF_CHGBODY		0x002
	SMFIF_ADDRCPT		0x004
	SMFIF_DELRCPT		0x008
	SMFIF_CHGHDRS		0x010
	SMFIF_QUARANTINE	0x020
	SMFIF_CHGFROM		0x040
	SMFIF_ADDRCPT_PAR	0x080
	SMFIF_SETSYMLIST	0x100
    }

    # SMFIP_* protocol bits.
    variable protocolBits {
	SMFIP_NOCONNECT		0x00000001
	SMFIP_NOHELO		0x00000002
	SMFIP_NOMAIL		0x00000004
	SMFIP_NORCPT		0x00000008
	SMFIP_NOBODY		0x00000010
	SMFIP_NOHDRS		0x00000020
	SMFIP_NOEOH		0x00000040
	SMFIP_NR_HDR		0x00000080
	SMFIP_NOUNKNOWN		0x00000100
	SMFIP_NODATA		0x00000200
	SMFIP_SKIP		0x00000400
	SMFIP_RCPT_REJ		0x00000800
	SMFIP_NR_CONN		0x00001000
	SMFIP_NR_HELO		0x00002000
	SMFIP_NR_MAIL		0x00004000
	SMFIP_NR_RCPT		0x00008000
	SMFIP_NR_DATA		0x00010000
	SMFIP_NR_UNKN		0x00020000
	SMFIP_NR_EOH		0x00040000
	SMFIP_NR_BODY		0x00080000
	SMFIP_HDR_LEADSPC	0x00100000
	SMFIP_MDS_256K		0x10000000
	SMFIP_MDS_1M		0x20000000
	SMFIP_TEST		0x80000000
    }

    # For each command that expects a reply: the event name, the SMFIP_NO*
    # bit that disables it, the SMFIP_NR_* bit that suppresses its reply,
    # and the lowest protocol version that knows it.
    variable commands {
	C {connect	0x00001 0x01000 2}
	H {helo		0x00002 0x02000 2}
	M {envfrom	0x00004 0x04000 2}
	R {envrcpt	0x00008 0x08000 2}
	T {data		0x00200 0x10000 4}
	L {header	0x00020 0x00080 2}
	N {eoh		0x00040 0x40000 2}
	B {body		0x00010 0x80000 2}
	E {eom		0x00000 0x00000 2}
	U {unknown	0x00100 0x20000 3}
    }

    # Macro stage names, their command letters and SMFIM_* numbers.
    variable stageLetters {
	connect C helo H envfrom M envrcpt R data T eoh N eom E
	header L body B unknown U
    }
    variable stageNumbers {
	0 connect 1 helo 2 envfrom 3 envrcpt 4 data 5 eom 6 eoh
    }

    # Modification replies: name and the SMFIF_* bit they need.
    variable modifications {
	h {addheader	0x001}
	i {insheader	0x001}
	m {chgheader	0x010}
	b {replacebody	0x002}
	+ {addrcpt	0x004}
	- {delrcpt	0x008}
	q {quarantine	0x020}
	e {chgfrom	0x040}
	2 {addrcpt_par	0x080}
    }

    # Final replies and the action they stand for.
    variable finals {
	c continue a accept r reject t tempfail d discard y replycode
	s skip 4 shutdown f connfail
    }

    # Subcommands of a session: least and most argument count, and usage.
    variable subcommands {
	abort		{0 0 ""}
	body		{1 1 "bytes"}
	close		{0 0 ""}
	configure	{0 -1 "?-option? ?value? ?-option value ...?"}
	connect		{1 4 "hostname ?family? ?port? ?address?"}
	data		{0 0 ""}
	envfrom		{1 -1 "address ?esmtparg ...?"}
	envrcpt		{1 -1 "address ?esmtparg ...?"}
	eof		{0 1 "?timeoutMs?"}
	eoh		{0 0 ""}
	eom		{0 1 "?bytes?"}
	header		{2 2 "name value"}
	helo		{1 1 "name"}
	macros		{2 2 "stage nameValueDict"}
	message		{0 -1 "?-option value ...?"}
	negotiated	{0 0 ""}
	quit		{0 0 ""}
	quitnc		{0 0 ""}
	read		{0 1 "?timeoutMs?"}
	send		{2 2 "command payload"}
	sendraw		{1 1 "bytes"}
	unknown		{1 1 "commandLine"}
    }

    # The relay used for unix-domain sockets when no unixconnect command
    # is set.  It prints "ok" or "error MESSAGE" on its first line, then
    # copies bytes both ways until either side closes.
    variable relay {
	use strict;
	use Socket;
	$SIG{PIPE} = 'IGNORE';
	$| = 1;
	my $path = $ARGV[0];
	my $sock;
	unless (socket($sock, PF_UNIX, SOCK_STREAM, 0)
		&& connect($sock, pack_sockaddr_un($path))) {
	    print "error $!\n";
	    exit 1;
	}
	print "ok\n";
	binmode(STDIN);
	binmode(STDOUT);
	binmode($sock);
	sub pass {
	    my ($from, $to) = @_;
	    my $buf;
	    my $n = sysread($from, $buf, 65536);
	    return 0 unless $n;
	    my $off = 0;
	    while ($off < $n) {
		my $w = syswrite($to, $buf, $n - $off, $off);
		return 0 unless defined($w);
		$off += $w;
	    }
	    return 1;
	}
	while (1) {
	    my $rin = '';
	    vec($rin, fileno(STDIN), 1) = 1;
	    vec($rin, fileno($sock), 1) = 1;
	    my $rout;
	    my $n = select($rout = $rin, undef, undef, undef);
	    if ($n < 0) {
		next if $!{EINTR};
		last;
	    }
	    if (vec($rout, fileno(STDIN), 1)) {
		last unless pass(\*STDIN, $sock);
	    }
	    if (vec($rout, fileno($sock), 1)) {
		last unless pass($sock, \*STDOUT);
	    }
	}
	exit 0;
    }
}

# ::milter::test::Throw --
#
#	Raise an error with an errorcode starting with MILTERTEST.
#
# Arguments:
#	code	the rest of the errorcode, e.g. {PROTOCOL REPLY}
#	msg	the message
#
# Results:
#	None; always raises an error.

proc ::milter::test::Throw {code msg} {
    return -code error -level 2 -errorcode [list MILTERTEST {*}$code] $msg
}

# ::milter::test::ParseFlags --
#
#	Turn an -actions or -protocol value into an integer.  The value is
#	either an integer or a list of SMFIF_*/SMFIP_* names (the prefix
#	may be left out, case does not matter).
#
# Arguments:
#	table	name of the bit table (actionBits or protocolBits)
#	option	the option name, for messages
#	value	the value given
#
# Results:
#	The integer value.

proc ::milter::test::ParseFlags {table option value} {
    variable $table
    set bits [set $table]
    if {[string is entier -strict $value]} {
	if {$value < 0 || $value > 0xffffffff} {
	    Throw USAGE "bad value \"$value\" for $option:\
		    must be a 32-bit unsigned integer or a list of flag names"
	}
	return [expr {$value}]
    }
    set prefix [expr {$table eq "actionBits" ? "SMFIF_" : "SMFIP_"}]
    set result 0
    foreach name $value {
	set key [string toupper $name]
	if {![string match ${prefix}* $key]} {
	    set key $prefix$key
	}
	if {![dict exists $bits $key]} {
	    Throw USAGE "bad flag \"$name\" for $option: must be one of\
		    [join [dict keys $bits] {, }]"
	}
	set result [expr {$result | [dict get $bits $key]}]
    }
    return $result
}

# ::milter::test::FlagNames --
#
#	List the names of the bits set in a value.  Bits without a name are
#	listed as hexadecimal numbers.
#
# Arguments:
#	table	name of the bit table (actionBits or protocolBits)
#	value	the integer
#
# Results:
#	A list of names.

proc ::milter::test::FlagNames {table value} {
    variable $table
    set names {}
    set known 0
    dict for {name bit} [set $table] {
	if {$value & $bit} {
	    lappend names $name
	}
	set known [expr {$known | $bit}]
    }
    for {set bit 1} {$bit <= 0x80000000} {set bit [expr {$bit << 1}]} {
	if {($value & $bit) && !($known & $bit)} {
	    lappend names [format 0x%08x $bit]
	}
    }
    return $names
}

# ::milter::test::CheckInteger --
#
#	Check an option value that must be an integer in a range.
#
# Arguments:
#	option	option name, for messages
#	value	the value
#	min max	the range
#
# Results:
#	The value.

proc ::milter::test::CheckInteger {option value min max} {
    if {![string is entier -strict $value] || $value < $min
	    || $value > $max} {
	Throw USAGE "bad value \"$value\" for $option:\
		must be an integer from [expr {$min}] to [expr {$max}]"
    }
    return [expr {$value}]
}

# ::milter::test::SetOption --
#
#	Check and store one of the session options that configure can
#	change (-timeout, -encoding, -chunksize).
#
# Arguments:
#	id	session number
#	option	the option, already matched against the table
#	value	its value
#
# Results:
#	None.

proc ::milter::test::SetOption {id option value} {
    upvar #0 [namespace current]::S$id st
    switch -- $option {
	-timeout {
	    set st(timeout) [CheckInteger $option $value 0 0x7fffffff]
	}
	-chunksize {
	    set st(chunksize) [CheckInteger $option $value 1 0x7ffffff0]
	}
	-encoding {
	    if {$value ni [encoding names]} {
		Throw USAGE "unknown encoding \"$value\""
	    }
	    set st(encoding) $value
	}
    }
}

# ::milter::test::open --
#
#	Connect to a milter and negotiate options.
#
# Arguments:
#	spec	unix:/path, local:/path, /path, inet:PORT@HOST or
#		inet6:PORT@HOST
#	args	options: -version, -actions, -protocol, -timeout,
#		-chunksize, -encoding
#
# Results:
#	The name of the new session command.

proc ::milter::test::open {spec args} {
    variable counter
    if {[llength $args] % 2} {
	return -code error -errorcode {TCL WRONGARGS} \
		"wrong # args: should be \"milter::test::open spec\
		?-option value ...?\""
    }
    set id [incr counter]
    upvar #0 [namespace current]::S$id st
    array set st {
	chan {} buf {} eof 0 wake 0 readerror {} busy 0
	offeredVersion 6 offeredActions 0x1ff offeredProtocol 0x1fffff
	timeout 5000 chunksize 65535 encoding utf-8
	version 0 actions 0 protocol 0 macros {} skip {}
    }
    set st(cmd) [namespace current]::session$id
    set st(spec) $spec
    try {
	foreach {option value} $args {
	    set option [tcl::prefix match -message option {-actions
		    -chunksize -encoding -protocol -timeout -version} $option]
	    switch -- $option {
		-version {
		    set st(offeredVersion) \
			    [CheckInteger $option $value 0 0xffffffff]
		}
		-actions {
		    set st(offeredActions) \
			    [ParseFlags actionBits $option $value]
		}
		-protocol {
		    set st(offeredProtocol) \
			    [ParseFlags protocolBits $option $value]
		}
		default {
		    SetOption $id $option $value
		}
	    }
	}
	Connect $id $spec
	Negotiate $id
    } on error {msg opts} {
	Destroy $id
	return -code error -errorcode [dict get $opts -errorcode] $msg
    }
    interp alias {} $st(cmd) {} [namespace current]::Dispatch $id
    return $st(cmd)
}

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

    # Unix-domain socket: a connector command if there is one (TclMilter
    # provides ::milter::test::unixsocket), else a perl relay.
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

# ::milter::test::Destroy --
#
#	Close a session's channel and forget it.
#
# Arguments:
#	id	session number
#
# Results:
#	None.

proc ::milter::test::Destroy {id} {
    upvar #0 [namespace current]::S$id st
    if {![info exists st]} {
	return
    }
    if {$st(chan) ne ""} {
	catch {chan event $st(chan) readable {}}
	catch {chan event $st(chan) writable {}}
	catch {close $st(chan)}
    }
    if {[info commands $st(cmd)] ne ""} {
	catch {interp alias {} $st(cmd) {}}
    }
    unset st
}

# ::milter::test::Dispatch --
#
#	The session command: check the subcommand and its argument count,
#	then call the Cmd_* procedure.  MILTERTEST errors are rethrown
#	without the internal stack.
#
# Arguments:
#	id	session number
#	args	subcommand and arguments
#
# Results:
#	What the subcommand returns.

proc ::milter::test::Dispatch {id args} {
    variable subcommands
    upvar #0 [namespace current]::S$id st
    if {![info exists st]} {
	return -code error -errorcode {MILTERTEST CLOSED} "session is closed"
    }
    if {[llength $args] == 0} {
	return -code error -errorcode {TCL WRONGARGS} \
		"wrong # args: should be \"$st(cmd) subcommand ?arg ...?\""
    }
    set sub [tcl::prefix match -message subcommand \
	    [dict keys $subcommands] [lindex $args 0]]
    set args [lrange $args 1 end]
    lassign [dict get $subcommands $sub] min max usage
    if {[llength $args] < $min || ($max >= 0 && [llength $args] > $max)} {
	return -code error -errorcode {TCL WRONGARGS} "wrong # args: should\
		be \"[string trimright "$st(cmd) $sub $usage"]\""
    }
    # A command that waits for the milter runs the event loop; from there
    # the same session must not be used again, or the replies would go to
    # the wrong command.
    set guarded [expr {$sub ni {close configure negotiated}}]
    if {$guarded} {
	if {$st(busy)} {
	    return -code error -errorcode {MILTERTEST BUSY} "session is busy:\
		    a command is already waiting for the milter"
	}
	set st(busy) 1
    }
    set code [catch {Cmd_$sub $id {*}$args} result opts]
    if {$guarded && [info exists st]} {
	set st(busy) 0
    }
    if {$code == 1} {
	set errorCode [dict get $opts -errorcode]
	if {[lindex $errorCode 0] eq "MILTERTEST"} {
	    return -code error -errorcode $errorCode $result
	}
	return -options $opts $result
    }
    return $result
}

# The subcommands.  Each takes the session number first; the argument
# counts have been checked by Dispatch.

proc ::milter::test::Cmd_negotiated {id} {
    upvar #0 [namespace current]::S$id st
    return [dict create version $st(version) actions $st(actions) \
	    protocol $st(protocol) \
	    actionnames [FlagNames actionBits $st(actions)] \
	    protocolnames [FlagNames protocolBits $st(protocol)] \
	    macros $st(macros)]
}

proc ::milter::test::Cmd_configure {id args} {
    upvar #0 [namespace current]::S$id st
    set options {-chunksize -encoding -timeout}
    if {[llength $args] == 0} {
	set result {}
	foreach option $options {
	    dict set result $option $st([string range $option 1 end])
	}
	return $result
    }
    if {[llength $args] == 1} {
	set option [tcl::prefix match -message option $options \
		[lindex $args 0]]
	return $st([string range $option 1 end])
    }
    if {[llength $args] % 2} {
	return -code error -errorcode {TCL WRONGARGS} "wrong # args: should\
		be \"$st(cmd) configure ?-option? ?value? ?-option value ...?\""
    }
    foreach {option value} $args {
	SetOption $id [tcl::prefix match -message option $options $option] \
		$value
    }
    return
}

proc ::milter::test::Cmd_macros {id stage macros} {
    return [SendMacros $id [StageLetter $stage] $macros]
}

proc ::milter::test::Cmd_connect {id hostname {family inet} {port {}}
	{address {}}} {
    set families {inet 4 inet6 6 unix L unknown U}
    if {[dict exists $families $family]} {
	set letter [dict get $families $family]
    } elseif {$family in [dict values $families]} {
	set letter $family
    } else {
	Throw USAGE "bad family \"$family\": must be inet, inet6, unix or\
		unknown"
    }
    set data [Encode $id $hostname]\0$letter
    if {$letter ne "U"} {
	if {$port eq ""} {
	    set port [expr {$letter eq "L" ? 0 : 25}]
	}
	CheckInteger port $port 0 65535
	if {$address eq ""} {
	    set address [dict get {4 127.0.0.1 6 ::1 L {}} $letter]
	}
	append data [binary format S $port] [Encode $id $address] \0
    }
    return [Command $id C $data]
}

proc ::milter::test::Cmd_helo {id name} {
    return [Command $id H [Encode $id $name]\0]
}

proc ::milter::test::Cmd_envfrom {id args} {
    return [Command $id M [EncodeArgv $id $args]]
}

proc ::milter::test::Cmd_envrcpt {id args} {
    return [Command $id R [EncodeArgv $id $args]]
}

proc ::milter::test::Cmd_data {id} {
    return [Command $id T {}]
}

proc ::milter::test::Cmd_header {id name value} {
    return [Command $id L [EncodeArgv $id [list $name $value]]]
}

proc ::milter::test::Cmd_eoh {id} {
    return [Command $id N {}]
}

proc ::milter::test::Cmd_body {id bytes} {
    return [Command $id B $bytes]
}

proc ::milter::test::Cmd_eom {id {bytes {}}} {
    return [Command $id E $bytes]
}

proc ::milter::test::Cmd_unknown {id line} {
    return [Command $id U [Encode $id $line]\0]
}

proc ::milter::test::Cmd_abort {id} {
    upvar #0 [namespace current]::S$id st
    Send $id A {}
    set st(skip) {}
    return
}

proc ::milter::test::Cmd_quit {id} {
    # Send QUIT; errors are ignored because the milter may already have
    # gone away, which is what quit wants anyway.
    catch {Send $id Q {}}
    Destroy $id
    return
}

proc ::milter::test::Cmd_quitnc {id} {
    upvar #0 [namespace current]::S$id st
    Send $id K {}
    set st(skip) {}
    return
}

proc ::milter::test::Cmd_close {id} {
    Destroy $id
    return
}

proc ::milter::test::Cmd_send {id cmd payload} {
    if {[string length $cmd] != 1} {
	Throw USAGE "bad command \"$cmd\": must be a single character"
    }
    Send $id $cmd $payload
    return
}

proc ::milter::test::Cmd_sendraw {id bytes} {
    SendRaw $id $bytes
    return
}

proc ::milter::test::Cmd_read {id {timeout {}}} {
    if {$timeout ne ""} {
	CheckInteger timeoutMs $timeout 0 0x7fffffff
    }
    lassign [NextPacket $id $timeout] cmd data
    return [dict create command $cmd data $data]
}

proc ::milter::test::Cmd_eof {id {timeout {}}} {
    upvar #0 [namespace current]::S$id st
    if {$timeout eq ""} {
	set timeout $st(timeout)
    }
    CheckInteger timeoutMs $timeout 0 0x7fffffff
    set deadline [Deadline $timeout]
    while {!$st(eof)} {
	if {![WaitEvent $id $deadline]} {
	    return 0
	}
    }
    return 1
}

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

package provide milter::test 1.0
