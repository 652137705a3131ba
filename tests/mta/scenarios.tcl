# scenarios.tcl --
#
#	The MTA scenarios that postfix.test and sendmail.test share, each
#	written once and run against both MTAs.  A scenario is data: the
#	test id for each MTA, a description, a body and the expected result
#	(one for both, or one per MTA).  A test file runs them with
#
#	    ::tm::scenario::run postfix ::pftest ?group?
#
#	Each body runs inside the file's namespace (here ::pftest), which
#	provides the same commands for both MTAs:
#
#	    deliver, session ?-listener L? ...	::tm::mta::deliver, session
#	    do COMMANDS ?opt ...?		a message with X-Milter-Do
#	    fields MSG				header fields the MTA did not add
#	    headerNames MSG			their names
#	    names R				event names of a session
#	    replies R				its SMTP replies
#	    report MSG				the X-Report dict
#	    milterOf LISTENER			the milter behind a listener
#	    port, delivered QID			the main listener's port; the
#						delivered copies of a message
#	    $m, $host				milter per name; the client
#						name the MTA sends at CONNECT
#
#	and the variables std (the header fields of ::tm::smtp::message)
#	and events (the event names of one plain message) defined here.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

namespace eval ::tm::scenario {
    variable scenarios {}	;# one dict per scenario, in order

    # The header fields of the default message, and the events of one
    # plain message.
    variable std [list {From: <sender@client.tclmilter.test>} \
	    {To: <rcpt@dest.tclmilter.test>} {Subject: test message}]
    variable events [list connect helo envfrom envrcpt data eoh body eom \
	    eom-done close]
}

# ::tm::scenario::define --
#
#	Adds a scenario.
#
# Arguments:
#	ids	the test id for each MTA: {postfix-1.1 sendmail-1.1}
#	desc	the test description
#	body	the test body, run in the test file's namespace
#	args	-result R (for every MTA), -postfix R, -sendmail R (for
#		one), -match MODE, -constraints-MTA LIST (constraints
#		beyond the MTA's own), -group NAME (default "main")
#
# Results:
#	None.
#
# Side effects:
#	Remembers the scenario.

proc ::tm::scenario::define {ids desc body args} {
    variable scenarios
    lappend scenarios [dict create ids $ids desc $desc body $body \
	    opts [dict merge {-group main -match exact} $args]]
    return
}

# ::tm::scenario::run --
#
#	Runs, as tcltest tests, the scenarios of one group that have an id
#	for the MTA.
#
# Arguments:
#	mta	postfix or sendmail (also the constraint)
#	ns	the test file's namespace (see above)
#	group	which scenarios
#
# Results:
#	None.
#
# Side effects:
#	Runs the tests.

proc ::tm::scenario::run {mta ns {group main}} {
    variable scenarios
    foreach scenario $scenarios {
	dict with scenario {}
	set id [lsearch -inline -glob $ids $mta-*]
	if {$id eq "" || [dict get $opts -group] ne $group} {
	    continue
	}
	if {[dict exists $opts -$mta]} {
	    set result [dict get $opts -$mta]
	} else {
	    set result [dict get $opts -result]
	}
	set constraints [list $mta]
	if {[dict exists $opts -constraints-$mta]} {
	    lappend constraints {*}[dict get $opts -constraints-$mta]
	}
	uplevel #0 [list ::tcltest::test $id $desc -constraints $constraints \
		-body [list namespace eval $ns $body] -result $result \
		-match [dict get $opts -match]]
    }
    return
}

namespace eval ::tm::scenario {

# ---------------------------------------------------------------------
# A message passes; headers
# ---------------------------------------------------------------------

define {postfix-1.1 sendmail-1.1} \
	{a message without commands passes unchanged} {
    set msg [deliver -message [do ""]]
    list [fields $msg] [dict get $msg body] [dict get $msg mail] \
	    [dict get $msg rcpts] [names $msg]
} -postfix [list $std "Hello.\n" <sender@client.tclmilter.test> \
	{{<rcpt@dest.tclmilter.test> ORCPT=rfc822;rcpt@dest.tclmilter.test}} \
	$events] \
  -sendmail [list $std "Hello.\n" <sender@client.tclmilter.test> \
	<rcpt@dest.tclmilter.test> $events]

define {postfix-1.2 sendmail-1.2} {the callbacks get what the MTA sent} {
    set msg [deliver -helo helo.client.test \
	    -from {<Sender@Client.Test> BODY=8BITMIME} \
	    -rcpt {{<r1@dest.test> NOTIFY=SUCCESS,DELAY} <r2@dest.test>} \
	    -message [do ""]]
    set port [lindex [dict get $msg result sockname] 2]
    set ev [dict get $msg events]
    list [expr {[lindex $ev 0] eq [list connect $host \
	    [list family inet address 127.0.0.1 port $port]]}] \
	    [lrange $ev 1 end]
} -result [list 1 [list {helo helo.client.test} \
	{envfrom {<Sender@Client.Test> BODY=8BITMIME}} \
	{envrcpt {<r1@dest.test> NOTIFY=SUCCESS,DELAY}} \
	{envrcpt <r2@dest.test>} data {eoh 3} {body 8} eom \
	{eom-done SMFIS_CONTINUE} close]]

define {postfix-1.3 sendmail-2.1} {addheader appends at the end} {
    set msg [deliver -message [do \
	    "addheader X-A 1; addheader X-B {two words}"]]
    fields $msg
} -result [list {*}$std \
	{X-Milter-Do: addheader X-A 1; addheader X-B {two words}} \
	{X-A: 1} {X-B: two words}]

define {postfix-1.7 sendmail-2.4} \
	{insheader 0 goes above the MTA's Received:} {
    set msg [deliver -message [do "insheader 0 X-Top t"]]
    lmap field [lrange [dict get $msg headers] 0 2] {lindex $field 0}
} -postfix {X-Top Received From} -sendmail {X-Top Received Date}

define {postfix-1.9 sendmail-2.6} \
	{folded headers: LF inside values, both ways} {
    set msg [deliver -message [do \
	    {echoheader X-Folded X-Echo; addheader X-Fold line1\n\tline2} \
	    -headers [list X-Folded "a\n\tb"]]]
    list [::tm::sink::header $msg X-Echo] [::tm::sink::header $msg X-Fold]
} -result [list [list "a\n\tb"] [list "line1\n\tline2"]]

# ---------------------------------------------------------------------
# 8-bit headers
# ---------------------------------------------------------------------

define {postfix-2.1 sendmail-2.7} \
	{UTF-8 header values reach the milter and come back byte-exact} {
    set msg [deliver -message [do \
	    "echoheader X-8bit X-Echo; addheader X-New \u00dcn\u00efc\u00f6d\u00e9" \
	    -headers [list X-8bit "Gr\u00fc\u00dfe \u20ac"]]]
    list [::tm::sink::header $msg X-Echo] [::tm::sink::header $msg X-New]
} -result [list [list [encoding convertto utf-8 "Gr\u00fc\u00dfe \u20ac"]] \
	[list [encoding convertto utf-8 "\u00dcn\u00efc\u00f6d\u00e9"]]]

define {postfix-2.2 sendmail-2.8} \
	{-encoding iso8859-1: any 8-bit byte comes back unchanged} {
    set bytes "caf\xe9 \xff\x80\xc3("
    set message "From: <a@b.test>\nSubject: x\nX-8bit: $bytes\n"
    append message "X-Milter-Do: echoheader X-8bit X-Echo\n\nHi.\n"
    set msg [deliver -listener latin1 -encoding binary -message $message]
    list [::tm::sink::header $msg X-8bit] [::tm::sink::header $msg X-Echo]
} -result [list [list "caf\xe9 \xff\x80\xc3("] [list "caf\xe9 \xff\x80\xc3("]]

# ---------------------------------------------------------------------
# Body
# ---------------------------------------------------------------------

define {postfix-3.1 sendmail-3.1} {replacebody} {
    set msg [deliver -message [do \
	    "replacebody text {new body} {.second line} {}"]]
    dict get $msg body
} -result "new body\n.second line\n\n"

define {postfix-3.2 sendmail-3.2} \
	{replacebody with more than 64 KiB (several packets)} {
    set msg [deliver -message [do \
	    "replacebody lines 6000 abcdefghijklmnopqrstuvwxyz"]]
    set expect ""
    for {set i 1} {$i <= 6000} {incr i} {
	append expect [format "%06d abcdefghijklmnopqrstuvwxyz\n" $i]
    }
    list [string length $expect] [expr {[dict get $msg body] eq $expect}]
} -result {204000 1}

define {postfix-3.3 sendmail-3.3} \
	{body bytes reach the milter exactly (replacebody upper)} {
    set msg [deliver -message [do "replacebody upper" \
	    -body "abc\n.dot line\n\nxyz \u00e4\u00f6\ttab\n"]]
    dict get $msg body
} -result [encoding convertto utf-8 \
	"ABC\n.DOT LINE\n\nXYZ \u00e4\u00f6\tTAB\n"]

define {postfix-3.4 sendmail-3.4} \
	{a body over 1 MiB: chunks of at most 65535 bytes, all bytes seen} {
    set line [string repeat 0123456789 7]
    set body [string repeat $line\n 16000]
    set msg [deliver -message [do report -body $body]]
    set chunks [lmap ev [dict get $msg events] {
	if {[lindex $ev 0] ne "body"} continue
	lindex $ev 1
    }]
    set report [report $msg]
    list [expr {[dict get $msg body] eq $body}] \
	    [dict get $report bodylen] [dict get $report chunks] \
	    [llength $chunks] [tcl::mathfunc::max {*}$chunks] \
	    [tcl::mathop::+ {*}$chunks]
} -result {1 1152000 18 18 65535 1152000}

define {postfix-3.5 sendmail-3.5} \
	{SMFIS_SKIP from body: no more chunks, eom still runs} {
    set body [string repeat "[string repeat x 99]\n" 2000]
    set msg [deliver -message [do \
	    "skipbody; report; addheader X-After-Skip yes" -body $body]]
    set report [report $msg]
    list [dict get $report chunks] [dict get $report bodylen] \
	    [::tm::sink::header $msg X-After-Skip] \
	    [expr {[dict get $msg body] eq $body}]
} -result {1 65535 yes 1}

# ---------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------

define {postfix-4.1 sendmail-4.1} \
	{addrcpt, with ESMTP arguments, and delrcpt} {
    set msg [deliver -rcpt {<r1@x.test> <r2@x.test>} -message [do \
	    [join {"addrcpt <add1@x.test>"
		"addrcpt <add2@x.test> {NOTIFY=NEVER ORCPT=rfc822;orig@x.test}"
		"delrcpt <r2@x.test>"} "; "]]]
    lsort [dict get $msg rcpts]
} -postfix [list {<add1@x.test> ORCPT=rfc822;add1@x.test} \
	{<add2@x.test> ORCPT=rfc822;orig@x.test NOTIFY=NEVER} \
	{<r1@x.test> ORCPT=rfc822;r1@x.test}] \
  -sendmail [list <add1@x.test> \
	{<add2@x.test> NOTIFY=NEVER ORCPT=rfc822;orig@x.test} <r1@x.test>]

define {postfix-4.2 sendmail-4.2} \
	{chgfrom with ESMTP arguments (RET and ENVID)} {
    set msg [deliver -message [do \
	    "chgfrom <new@x.test> {RET=HDRS ENVID=abc123}"]]
    dict get $msg mail
} -postfix {<new@x.test> ENVID=abc123 RET=HDRS} \
  -sendmail {<new@x.test> ENVID=abc123 RET=HDRS AUTH=}

# ---------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------

define {postfix-6.8 sendmail-6.5} \
	{accept at MAIL: no more callbacks, no modifications} {
    set msg [deliver -from <accept-mail@x.test> \
	    -message [do "addheader X-A 1"]]
    list [headerNames $msg] [names $msg]
} -result {{From To Subject X-Milter-Do} {connect helo envfrom close}}

define {postfix-6.9 sendmail-6.7} \
	{RCPT verdicts: reject, tempfail, multi-line; the rest goes on} {
    set msg [deliver -rcpt {<reject-rcpt@x.test>
	<tempfail-rcpt@x.test> <multiline-rcpt@x.test> <ok@x.test>} \
	    -message [do ""]]
    list [dict get $msg result rcpt] [dict get $msg rcpts]
} -postfix [list [list \
	{{550 5.1.1 recipient rejected by milter}} \
	{{451 4.7.1 Service unavailable - try again later}} \
	[list {550-5.7.1 first line} {550-5.7.1 second line} \
	    {550 5.7.1 last line}] \
	{{250 2.1.5 Ok}}] \
	{{<ok@x.test> ORCPT=rfc822;ok@x.test}}] \
  -sendmail [list [list \
	{{550 5.1.1 <reject-rcpt@x.test>... recipient rejected by milter}} \
	{{451 4.3.2 Please try again later}} \
	[list {550-5.7.1 <multiline-rcpt@x.test>... first line} \
	    {550-5.7.1 second line} {550 5.7.1 last line}] \
	{{250 2.1.5 <ok@x.test>... Recipient ok}}] \
	<ok@x.test>]

define {postfix-6.10 sendmail-6.8} {unknown SMTP command: the milter's reply} {
    set r [session -before {{FOOBAR some args}}]
    list [dict get $r before] [lrange [dict get $r events] 1 2]
} -postfix [list {{{550 5.5.1 unknown command refused by milter}}} \
	{{helo client.tclmilter.test} {unknown FOOBAR}}] \
  -sendmail [list {{{550 5.5.1 unknown command refused by milter}}} \
	{{helo client.tclmilter.test} {unknown {FOOBAR some args}}}]

define {postfix-6.12 sendmail-6.10} \
	{reject from the header callback: the message is refused} {
    set r [session -message [do "addheader X-A 1" \
	    -headers {X-Reject-Header yes X-After no}]]
    list [dict get $r dot] [lrange [names $r] end-1 end]
} -result {{{550 5.7.1 header rejected by milter}} {data close}}

define {postfix-7.5 sendmail-7.3} \
	{a reply with "%" reaches the client intact} {
    dict get [session -message [do \
	    "setreply 550 5.7.1 {100% spam}; return SMFIS_REJECT"]] dot
} -result {{550 5.7.1 100% spam}}

define {postfix-7.8 sendmail-7.6} \
	{a callback error gets the -defaultreply (tempfail)} {
    set r [session -message [do "no-such-command"]]
    list [dict get $r dot] [lindex [dict get $r events] end-1]
} -postfix {{{451 4.7.1 Service unavailable - try again later}} eom} \
  -sendmail {{{451 4.3.2 Please try again later}} eom}

# ---------------------------------------------------------------------
# Progress; several messages per SMTP session; transports
# ---------------------------------------------------------------------

define {postfix-8.1 sendmail-8.1} \
	{progress keeps a slow eom alive past the MTA's timeout} {
    set t0 [clock milliseconds]
    set msg [deliver -listener slow -message [do \
	    "progress 4 1000; addheader X-Slow done"]]
    list [expr {[clock milliseconds] - $t0 >= 4000}] \
	    [::tm::sink::header $msg X-Slow] \
	    [lsearch -all -inline -index 0 [dict get $msg events] progress]
} -result {1 done {{progress 1} {progress 2} {progress 3} {progress 4}}}

define {postfix-10.1 sendmail-9.1} \
	{three messages in one session: per-message state resets} {
    set mm [milterOf main]
    ::tm::mta::milter::quiesce $mm
    set mark [::tm::mta::milter::mark $mm]
    lassign [::tm::smtp::open 127.0.0.1 [port]] chan
    ::tm::smtp::command $chan "EHLO client.tclmilter.test"
    set qids {}
    foreach i {1 2 3} {
	set t [::tm::smtp::transaction $chan <s$i@x.test> [list <r$i@x.test>] \
		[do "report; addheader X-N $i" -headers [lrepeat $i X-Extra $i]]]
	lappend qids [::tm::smtp::queueid [dict get $t dot]]
    }
    ::tm::smtp::command $chan QUIT
    close $chan
    ::tm::mta::milter::quiesce $mm
    set out {}
    foreach qid $qids {
	set msg [lindex [delivered $qid] 0]
	set report [report $msg]
	lappend out [list [dict get $msg mail] [::tm::sink::header $msg X-N] \
		[dict get $report messages] [dict get $report headers] \
		[dict get $report unset]]
    }
    lappend out [::tm::mta::milter::names [::tm::mta::milter::since $mm $mark]]
} -result [list {<s1@x.test> 1 1 5 {0 0}} {<s2@x.test> 2 2 6 {12 0}} \
	{<s3@x.test> 3 3 7 {12 0}} \
	[list connect helo {*}[lrepeat 3 envfrom envrcpt data eoh body eom \
	eom-done] close]]

define {postfix-11.1 sendmail-10.1} {milter on inet:PORT@127.0.0.1} {
    set msg [deliver -listener inet -message [do "addheader X-Via inet"]]
    list [::tm::sink::header $msg X-Via] [names $msg]
} -result [list inet $events]

define {postfix-11.2 sendmail-10.2} {milter on inet6:PORT@::1} {
    set msg [deliver -listener inet6 -message [do "addheader X-Via inet6"]]
    list [::tm::sink::header $msg X-Via] [names $msg]
} -result [list inet6 $events] -constraints-sendmail loopbackIPv6

# ---------------------------------------------------------------------
# Last: every milter process survived all the sessions
# ---------------------------------------------------------------------

define {postfix-12.1 sendmail-11.1} \
	{every milter process survived all the sessions} {
    set dead {}
    dict for {name mm} $m {
	if {![::tm::mta::milter::alive $mm]} {
	    lappend dead $name
	}
    }
    set dead
} -result {} -group last

}
