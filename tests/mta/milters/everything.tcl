# everything.tcl --
#
#	A TclMilter filter for the real-MTA tests (tests/postfix.test,
#	tests/sendmail.test, tests/miltertest-lua.test).  It exercises every
#	context subcommand, driven by the message itself, and logs every
#	callback so a test can check what the MTA sent.
#
# Usage:
#	tclsh everything.tcl CONNSPEC LOGFILE ?option value ...?
#
#	CONNSPEC	the -connection spec, e.g. unix:/tmp/x/m.sock or
#			inet:0@127.0.0.1 (the real address is logged).
#	LOGFILE		one Tcl list per line; the first line is
#			"ready ADDRESS" once the milter listens.
#
# Options:
#	-rejectconnect ADDRS	client addresses rejected at connect
#				(setreply 554 5.7.1, SMFIS_REJECT)
#	-tempfailconnect ADDRS	client addresses tempfailed at connect
#	-rejecthostname NAMES	client host names rejected at connect
#	-symlist STAGEMACROS	dict stage -> macro list, sent with
#				setsymlist from a negotiate callback
#	-name NAME		milter name (default everything)
#	-encoding ENC		milter configure -encoding (default: the
#				package default)
#
# Fixed verdicts before end of message:
#	HELO reject.helo.test		550 5.7.1 text, SMFIS_REJECT
#	HELO tempfail.helo.test		SMFIS_TEMPFAIL, no text
#	MAIL FROM:<reject-mail@...>	550 5.7.1 text, SMFIS_REJECT
#	MAIL FROM:<tempfail-mail@...>	451 4.7.1 text, SMFIS_TEMPFAIL
#	MAIL FROM:<discard-mail@...>	SMFIS_DISCARD
#	MAIL FROM:<accept-mail@...>	SMFIS_ACCEPT
#	RCPT TO:<reject-rcpt@...>	550 5.1.1 text, SMFIS_REJECT
#	RCPT TO:<tempfail-rcpt@...>	SMFIS_TEMPFAIL, no text
#	RCPT TO:<multiline-rcpt@...>	3-line 550 5.7.1 reply, SMFIS_REJECT
#	unknown SMTP command		550 5.5.1 text, SMFIS_REJECT
#	header X-Reject-Header		550 5.7.1 text, SMFIS_REJECT
#
# End of message is driven by X-Milter-Do headers: each value is a list
# of commands separated by "; ", each command a Tcl list, run in order at
# end of message (several X-Milter-Do headers are run in header order):
#	addheader NAME VALUE		insheader INDEX NAME VALUE
#	chgheader NAME INDEX VALUE	delheader NAME INDEX
#	echoheader SRC DST		(add DST with the value SRC had)
#	addrcpt RCPT ?ARGS?		delrcpt RCPT
#	chgfrom ADDR ?ARGS?		quarantine REASON
#	replacebody text LINE ...	(lines joined and ended with CRLF)
#	replacebody lines COUNT WORD	(COUNT lines "%06d WORD")
#	replacebody upper		(received body in upper case)
#	progress COUNT MS		(COUNT x: sleep MS, then progress)
#	sleep MS			setreply CODE XCODE LINE ...
#	macros				(add X-Macros-STAGE headers)
#	report				(add X-Report and X-Connect-Info;
#					 X-Report's "unset" is {msg.* keys
#					 before, after} unsetpriv msg.* at
#					 MAIL)
#	return VERDICT			(eom result, default SMFIS_CONTINUE)
#	skipbody			(body returns SMFIS_SKIP; header time)

package require TclMilter

namespace eval ::everything {
    variable log ""
    variable opts [dict create -rejectconnect {} -tempfailconnect {} \
	    -rejecthostname {} -symlist {} -name everything -encoding {}]

    # Macros looked up at each stage; recorded for the "macros" command.
    variable stageMacros {
	connect {j _ v {{daemon_name}} {{daemon_addr}} {{daemon_port}}
	    {{client_addr}} {{client_port}} {{client_name}} {{client_ptr}}
	    {{if_name}} {{if_addr}}}
	helo {{{tls_version}} {{cipher}} {{cipher_bits}} {{cert_subject}}
	    {{cert_issuer}} {{client_addr}}}
	envfrom {i {{mail_addr}} {{mail_host}} {{mail_mailer}} {{auth_type}}
	    {{auth_authen}} {{auth_author}}}
	envrcpt {i {{rcpt_addr}} {{rcpt_host}} {{rcpt_mailer}}}
	data {i}
	eoh {i}
	eom {i {{msg_id}} j {{daemon_name}} {{mail_addr}}}
    }
}

# everything::log --
#	Append one list to the log file (opened per line, so a test reading
#	the file sees every complete line at once).

proc ::everything::log {args} {
    variable log
    set f [open $log a]
    fconfigure $f -encoding utf-8
    puts $f $args
    close $f
}

# everything::record --
#	Look up this stage's macros (stageMacros, plus those -symlist asks
#	for at this stage) with getsymval and keep them in the
#	context as conn.macros.STAGE (connect, helo) or msg.macros.STAGE.

proc ::everything::record {ctx stage} {
    variable stageMacros
    variable opts
    set syms [dict get $stageMacros $stage]
    # Also whatever -symlist asked for at this stage.
    if {[dict exists $opts -symlist $stage]} {
	foreach sym [dict get $opts -symlist $stage] {
	    if {$sym ni $syms} {
		lappend syms $sym
	    }
	}
    }
    set values {}
    foreach sym $syms {
	dict set values $sym [$ctx getsymval $sym]
    }
    set scope [expr {$stage in {connect helo} ? "conn" : "msg"}]
    if {$stage eq "envrcpt"} {
	set old [priv $ctx msg.macros.envrcpt]
	$ctx setpriv msg.macros.envrcpt [linsert $old end $values]
    } else {
	$ctx setpriv $scope.macros.$stage $values
    }
}

# everything::localpart --
#	"<Foo-Bar@x.test>" -> "foo-bar".

proc ::everything::localpart {addr} {
    set addr [string tolower [string trim $addr "<>"]]
    return [lindex [split $addr @] 0]
}

# everything::priv --
#	A private value of the context, or "" if it was never set.

proc ::everything::priv {ctx key} {
    set all [$ctx getpriv]
    return [expr {[dict exists $all $key] ? [dict get $all $key] : ""}]
}

proc ::everything::on_negotiate {ctx actions protocol} {
    variable opts
    log negotiate $actions $protocol
    dict for {stage macros} [dict get $opts -symlist] {
	$ctx setsymlist $stage $macros
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_connect {ctx hostname addrInfo} {
    variable opts
    log connect $hostname $addrInfo
    $ctx setpriv conn.connect [list $hostname $addrInfo]
    $ctx setpriv conn.messages 0
    record $ctx connect
    set addr [expr {[dict exists $addrInfo address]
	    ? [dict get $addrInfo address] : ""}]
    if {$addr in [dict get $opts -rejectconnect]} {
	$ctx setreply 554 5.7.1 "connect from $addr rejected by milter"
	return SMFIS_REJECT
    }
    if {$addr in [dict get $opts -tempfailconnect]} {
	return SMFIS_TEMPFAIL
    }
    if {$hostname in [dict get $opts -rejecthostname]} {
	$ctx setreply 554 5.7.1 "host $hostname rejected by milter"
	return SMFIS_REJECT
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_helo {ctx helohost} {
    log helo $helohost
    $ctx setpriv conn.helo $helohost
    record $ctx helo
    switch -- $helohost {
	reject.helo.test {
	    $ctx setreply 550 5.7.1 "HELO $helohost rejected by milter"
	    return SMFIS_REJECT
	}
	tempfail.helo.test {
	    return SMFIS_TEMPFAIL
	}
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_envfrom {ctx argv} {
    log envfrom $argv
    # A new message: forget the previous one (Sendmail sends no ABORT
    # after a completed message, Postfix does).
    set before [llength [dict keys [$ctx getpriv] msg.*]]
    $ctx unsetpriv msg.*
    set after [llength [dict keys [$ctx getpriv] msg.*]]
    $ctx setpriv msg.unset [list $before $after]
    $ctx setpriv msg.headers 0
    $ctx setpriv msg.bodylen 0
    $ctx setpriv msg.chunks 0
    $ctx setpriv msg.body ""
    $ctx setpriv msg.do {}
    $ctx setpriv msg.seen {}
    $ctx setpriv msg.macros.envrcpt {}
    $ctx setpriv conn.messages [expr {[$ctx getpriv conn.messages] + 1}]
    record $ctx envfrom
    switch -- [localpart [lindex $argv 0]] {
	reject-mail {
	    $ctx setreply 550 5.7.1 "sender rejected by milter"
	    return SMFIS_REJECT
	}
	tempfail-mail {
	    $ctx setreply 451 4.7.1 "sender tempfailed by milter"
	    return SMFIS_TEMPFAIL
	}
	discard-mail {
	    return SMFIS_DISCARD
	}
	accept-mail {
	    return SMFIS_ACCEPT
	}
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_envrcpt {ctx argv} {
    log envrcpt $argv
    record $ctx envrcpt
    switch -- [localpart [lindex $argv 0]] {
	reject-rcpt {
	    $ctx setreply 550 5.1.1 "recipient rejected by milter"
	    return SMFIS_REJECT
	}
	tempfail-rcpt {
	    return SMFIS_TEMPFAIL
	}
	multiline-rcpt {
	    $ctx setreply 550 5.7.1 "first line" "second line" "last line"
	    return SMFIS_REJECT
	}
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_data {ctx} {
    log data
    record $ctx data
    return SMFIS_CONTINUE
}

proc ::everything::on_header {ctx name value} {
    $ctx setpriv msg.headers [expr {[$ctx getpriv msg.headers] + 1}]
    set seen [$ctx getpriv msg.seen]
    lappend seen $name $value
    $ctx setpriv msg.seen $seen
    if {[string equal -nocase $name X-Milter-Do]} {
	set todo [$ctx getpriv msg.do]
	# ";" ends a command only before white space or at the end, so
	# that "ORCPT=rfc822;a@b" stays whole.
	foreach cmd [split [regsub -all {;(\s+|$)} $value \0] \0] {
	    set cmd [string trim $cmd]
	    if {$cmd ne ""} {
		lappend todo $cmd
	    }
	}
	$ctx setpriv msg.do $todo
    }
    if {[string equal -nocase $name X-Reject-Header]} {
	$ctx setreply 550 5.7.1 "header rejected by milter"
	return SMFIS_REJECT
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_eoh {ctx} {
    log eoh [$ctx getpriv msg.headers]
    record $ctx eoh
    return SMFIS_CONTINUE
}

proc ::everything::on_body {ctx bytes} {
    set len [string length $bytes]
    log body $len
    $ctx setpriv msg.bodylen [expr {[$ctx getpriv msg.bodylen] + $len}]
    $ctx setpriv msg.chunks [expr {[$ctx getpriv msg.chunks] + 1}]
    $ctx setpriv msg.body [$ctx getpriv msg.body]$bytes
    if {"skipbody" in [$ctx getpriv msg.do]} {
	return SMFIS_SKIP
    }
    return SMFIS_CONTINUE
}

proc ::everything::on_eom {ctx} {
    log eom
    record $ctx eom
    set verdict SMFIS_CONTINUE
    foreach cmd [$ctx getpriv msg.do] {
	set args [lassign $cmd op]
	switch -- $op {
	    addheader {
		lassign $args name value
		$ctx addheader $name $value
	    }
	    insheader {
		lassign $args index name value
		$ctx insheader $name $index $value
	    }
	    chgheader {
		lassign $args name index value
		$ctx chgheader $name $index $value
	    }
	    delheader {
		lassign $args name index
		$ctx chgheader $name $index ""
	    }
	    echoheader {
		lassign $args src dst
		foreach {name value} [$ctx getpriv msg.seen] {
		    if {[string equal -nocase $name $src]} {
			$ctx addheader $dst $value
		    }
		}
	    }
	    addrcpt {
		$ctx addrcpt {*}$args
	    }
	    delrcpt {
		$ctx delrcpt [lindex $args 0]
	    }
	    chgfrom {
		$ctx chgfrom {*}$args
	    }
	    replacebody {
		$ctx replacebody [newBody $ctx $args]
	    }
	    quarantine {
		$ctx quarantine [lindex $args 0]
	    }
	    progress {
		lassign $args count ms
		for {set i 0} {$i < $count} {incr i} {
		    after $ms
		    $ctx progress
		    log progress [expr {$i + 1}]
		}
	    }
	    sleep {
		after [lindex $args 0]
	    }
	    setreply {
		$ctx setreply {*}$args
	    }
	    macros {
		addMacroHeaders $ctx
	    }
	    report {
		addReport $ctx
	    }
	    return {
		set verdict [lindex $args 0]
	    }
	    skipbody {
	    }
	    default {
		error "X-Milter-Do: unknown command \"$op\""
	    }
	}
    }
    log eom-done $verdict
    return $verdict
}

# everything::newBody --
#	The body for "replacebody SPEC", as CRLF-terminated bytes.

proc ::everything::newBody {ctx spec} {
    set args [lassign $spec kind]
    switch -- $kind {
	text {
	    return [encoding convertto utf-8 [join $args \r\n]\r\n]
	}
	lines {
	    lassign $args count word
	    set body ""
	    for {set i 1} {$i <= $count} {incr i} {
		append body [format "%06d %s\r\n" $i $word]
	    }
	    return $body
	}
	upper {
	    return [string toupper [$ctx getpriv msg.body]]
	}
    }
    error "replacebody: unknown kind \"$kind\""
}

proc ::everything::addMacroHeaders {ctx} {
    foreach stage {connect helo} {
	$ctx addheader X-Macros-[string totitle $stage] \
		[priv $ctx conn.macros.$stage]
    }
    foreach stage {envfrom data eoh eom} {
	$ctx addheader X-Macros-[string totitle $stage] \
		[priv $ctx msg.macros.$stage]
    }
    foreach values [$ctx getpriv msg.macros.envrcpt] {
	$ctx addheader X-Macros-Envrcpt $values
    }
}

proc ::everything::addReport {ctx} {
    set keys [lsort [dict keys [$ctx getpriv]]]
    $ctx addheader X-Report [list headers [$ctx getpriv msg.headers] \
	    bodylen [$ctx getpriv msg.bodylen] \
	    chunks [$ctx getpriv msg.chunks] \
	    messages [$ctx getpriv conn.messages] \
	    unset [$ctx getpriv msg.unset] \
	    privkeys $keys]
    $ctx addheader X-Connect-Info [list {*}[priv $ctx conn.connect] \
	    [priv $ctx conn.helo]]
}

proc ::everything::on_abort {ctx} {
    log abort
    $ctx unsetpriv msg.*
    return SMFIS_CONTINUE
}

proc ::everything::on_close {ctx} {
    log close
    return SMFIS_CONTINUE
}

proc ::everything::on_unknown {ctx cmdline} {
    log unknown $cmdline
    $ctx setreply 550 5.5.1 "unknown command refused by milter"
    return SMFIS_REJECT
}

proc ::everything::main {argv} {
    variable log
    variable opts
    if {[llength $argv] < 2 || [llength $argv] % 2} {
	puts stderr "usage: everything.tcl CONNSPEC LOGFILE ?option value ...?"
	exit 2
    }
    set argv [lassign $argv spec log]
    foreach {opt value} $argv {
	if {![dict exists $opts $opt]} {
	    puts stderr "everything.tcl: unknown option \"$opt\""
	    exit 2
	}
	dict set opts $opt $value
    }
    milter configure -name [dict get $opts -name] -connection $spec
    if {[dict get $opts -encoding] ne ""} {
	milter configure -encoding [dict get $opts -encoding]
    }
    foreach event {connect helo envfrom envrcpt data header eoh body eom
	    abort close unknown} {
	milter register $event ::everything::on_$event
    }
    if {[dict size [dict get $opts -symlist]]} {
	milter register negotiate ::everything::on_negotiate
    }
    milter start
    log ready [milter address]
    milter main
    log stopped
}

::everything::main $argv
