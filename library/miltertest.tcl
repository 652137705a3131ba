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

    # Actions that end a message (the "message" subcommand stops there).
    variable finalActions {
	accept reject tempfail discard replycode shutdown connfail
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
	# End of our input is passed on as a half close: the milter's
	# replies are still relayed until it closes.
	my $input = 1;
	while (1) {
	    my $rin = '';
	    vec($rin, fileno(STDIN), 1) = 1 if $input;
	    vec($rin, fileno($sock), 1) = 1;
	    my $rout;
	    my $n = select($rout = $rin, undef, undef, undef);
	    if ($n < 0) {
		next if $!{EINTR};
		last;
	    }
	    if ($input && vec($rout, fileno(STDIN), 1)
		    && !pass(\*STDIN, $sock)) {
		$input = 0;
		shutdown($sock, 1);
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

# ::milter::test::CheckPairs --
#
#	The error of a command whose options must come in pairs.
#
# Arguments:
#	words	the option words given
#	usage	what the command expects, for the message
#
# Results:
#	None; an error (TCL WRONGARGS) when words has an odd length.

proc ::milter::test::CheckPairs {words usage} {
    if {[llength $words] % 2} {
	return -code error -level 2 -errorcode {TCL WRONGARGS} \
		"wrong # args: should be \"$usage\""
    }
    return
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
    CheckPairs $args "milter::test::open spec ?-option value ...?"
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
    CheckPairs $args \
	    "$st(cmd) configure ?-option? ?value? ?-option value ...?"
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

# The connection and packet layer, whole messages, and the replay of
# captures have files of their own beside this one.

apply {{dir} {
    foreach file {miltertestIO.tcl miltertestMessage.tcl
	    miltertestReplay.tcl} {
	uplevel #0 [list source -encoding utf-8 [file join $dir $file]]
    }
}} [file dirname [file normalize [info script]]]

package provide milter::test 1.0
