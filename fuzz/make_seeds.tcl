#!/usr/bin/env tclsh
# make_seeds.tcl --
#
#	Writes the seed corpora of the fuzz targets:
#
#	    fuzz/corpus/session/*	inputs of fuzz_session.c
#	    fuzz/corpus/wire/*		inputs of fuzz_wire.c
#
#	The streams are what Postfix and Sendmail send a milter (as their
#	sources and libmilter speak the protocol): option negotiation with version 6 and
#	version 2, the macros of each stage including Postfix's L, B and U
#	stages, connect information for IPv4, IPv6 with and without
#	Sendmail's "IPv6:" prefix, UNIX sockets and unknown peers, HELO,
#	MAIL and RCPT with ESMTP arguments, headers with folded (LF) and
#	8-bit values, body chunks up to 65535 bytes, end of message with and
#	without a last chunk, Postfix's ABORT after each message, QUIT_NC
#	and QUIT. Some session seeds carry a script (verdicts and context
#	calls, see the header of fuzz_session.c) so the fuzzer starts from
#	replies, modifications, no-reply stages, skips and macro lists.
#	The wire corpus also holds the milter's side: OPTNEG answers with
#	macro lists, replies and every modification packet.
#
#	Usage:	tclsh fuzz/make_seeds.tcl
#
#	The output is deterministic; existing seed files are replaced.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require Tcl 8.6

set fuzzDir [file dirname [file normalize [info script]]]

# ----------------------------------------------------------------------
# Packets.  Every value is a byte string (characters 0-255).
# ----------------------------------------------------------------------

proc bytes {s} {
    # A text as UTF-8 bytes.
    encoding convertto utf-8 $s
}

proc pkt {cmd {data ""}} {
    binary format Ia1a* [expr {[string length $data] + 1}] $cmd $data
}

proc strs {args} {
    set out ""
    foreach s $args {
	append out $s \0
    }
    return $out
}

proc optneg {version actions protocol} {
    pkt O [binary format III $version $actions $protocol]
}

proc macros {stage args} {
    pkt D $stage[strs {*}$args]
}

proc connect {host family {port 0} {addr ""}} {
    if {$family eq "U"} {
	return [pkt C $host\0U]
    }
    pkt C $host\0$family[binary format S $port]$addr\0
}

proc helo {name}	{pkt H [strs $name]}
proc mail {args}	{pkt M [strs {*}$args]}
proc rcpt {args}	{pkt R [strs {*}$args]}
proc data {}		{pkt T}
proc header {name value} {pkt L [strs $name $value]}
proc eoh {}		{pkt N}
proc body {bytes}	{pkt B $bytes}
proc eom {{bytes ""}}	{pkt E $bytes}
proc abort {}		{pkt A}
proc quit {}		{pkt Q}
proc quitnc {}		{pkt K}
proc unknownCmd {line} {pkt U [strs $line]}

# A body of 'n' bytes of CRLF-terminated lines.
proc bodyText {n {seed 0}} {
    set out ""
    set i $seed
    while {[string length $out] < $n} {
	append out "Line $i of the message body, some text to fill it.\r\n"
	incr i
    }
    string range $out 0 [expr {$n - 1}]
}

# ----------------------------------------------------------------------
# MTA traffic.
# ----------------------------------------------------------------------

# Postfix's default macro lists (postconf milter_*_macros).
proc postfixConnectMacros {addr} {
    macros C j mx.example.org "{daemon_name}" smtpd "{daemon_addr}" 192.0.2.1 \
	    v Postfix _ "client.example.net \[$addr\]" "{client_addr}" $addr
}

proc postfixMessage {n {final ""}} {
    set out ""
    append out [macros M i 4XkQ1b2c3dz$n "{mail_mailer}" esmtp \
	    "{mail_host}" client.example.net "{mail_addr}" sender$n@example.net]
    append out [mail <sender$n@example.net> SIZE=1234 BODY=8BITMIME]
    append out [macros R "{rcpt_mailer}" local "{rcpt_host}" "" \
	    "{rcpt_addr}" user@example.org]
    append out [rcpt <user@example.org> NOTIFY=SUCCESS,FAILURE \
	    ORCPT=rfc822\;user@example.org]
    append out [macros R "{rcpt_mailer}" error "{rcpt_host}" 5.1.1 \
	    "{rcpt_addr}" "User unknown"]
    append out [rcpt <nobody@example.org>]
    append out [macros T i 4XkQ1b2c3dz$n]
    append out [data]
    append out [macros L i 4XkQ1b2c3dz$n]
    append out [header From "Sender <sender$n@example.net>"]
    append out [header To user@example.org]
    append out [header Subject [bytes "Gr\u00fc\u00dfe aus K\u00f6ln"]]
    append out [header X-Latin1 "caf\xe9 cr\xe8me"]
    append out [header Received "from client.example.net (client.example.net \[192.0.2.7\])\n\tby mx.example.org (Postfix) with ESMTPS id 4XkQ1b2c3dz$n\n\tfor <user@example.org>; Mon,  6 Jan 2026 10:00:00 +0100 (CET)"]
    append out [header Message-ID <$n.abc@example.net>]
    append out [header DKIM-Signature "v=1; a=rsa-sha256; d=example.net; s=s1;\n\th=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n\tb=AbCdEf"]
    append out [macros N i 4XkQ1b2c3dz$n]
    append out [eoh]
    append out [macros B i 4XkQ1b2c3dz$n]
    append out [body [bodyText 300 $n]]
    append out [body [bodyText 120 [expr {$n + 50}]]]
    append out [macros E i 4XkQ1b2c3dz$n]
    append out [eom $final]
    append out [abort]
    return $out
}

proc postfixSession {args} {
    set version 6
    set actions 0x1FF
    set protocol 0x1FFFFF
    set messages 1
    set family 4
    set addr 192.0.2.7
    dict with args {}
    set out ""
    append out [optneg $version $actions $protocol]
    append out [postfixConnectMacros $addr]
    if {$family eq "6"} {
	append out [connect client.example.net 6 40001 $addr]
    } else {
	append out [connect client.example.net 4 40001 $addr]
    }
    append out [macros H "{tls_version}" TLSv1.3 "{cipher}" \
	    TLS_AES_256_GCM_SHA384 "{cipher_bits}" 256]
    append out [helo client.example.net]
    for {set i 1} {$i <= $messages} {incr i} {
	append out [postfixMessage $i [expr {$i % 2 ? "" : [bodyText 40]}]]
    }
    append out [macros U "{client_addr}" $addr]
    append out [unknownCmd "XFOO bar"]
    append out [quit]
    return $out
}

proc sendmailSession {} {
    set out ""
    append out [optneg 6 0x1FF 0x1FFFFF]
    append out [macros C j mail.example.com _ \
	    "client.example.net \[IPv6:2001:db8::7\]" "{daemon_name}" MTA \
	    "{if_name}" mail.example.com "{if_addr}" 2001:db8::1]
    append out [connect client.example.net 6 25000 \
	    IPv6:2001:db8:0:0:0:0:0:7]
    append out [macros H "{tls_version}" TLSv1.2 "{cipher}" \
	    ECDHE-RSA-AES256-GCM-SHA384 "{cipher_bits}" 256 \
	    "{cert_subject}" "" "{cert_issuer}" ""]
    append out [helo \[IPv6:2001:db8::7\]]
    append out [macros M i 5A6B7C8D012345 "{auth_type}" PLAIN \
	    "{auth_authen}" alice "{auth_ssf}" 0 "{mail_mailer}" esmtp \
	    "{mail_host}" example.net "{mail_addr}" alice@example.net]
    append out [mail <alice@example.net> SIZE=512 AUTH=alice@example.net]
    append out [macros R "{rcpt_mailer}" local "{rcpt_host}" "" \
	    "{rcpt_addr}" bob]
    append out [rcpt <bob@example.com>]
    append out [data]
    append out [header Received " from \[IPv6:2001:db8::7\] by mail.example.com\n\t(8.18.1/8.18.1) with ESMTPSA id 5A6B7C8D012345"]
    append out [header From " Alice <alice@example.net>"]
    append out [header Subject " =?UTF-8?Q?Gr=C3=BC=C3=9Fe?="]
    append out [header X-Folded " first line\n second line\n\tthird line"]
    append out [header X-Empty ""]
    append out [eoh]
    append out [body "Hello Bob,\r\n\r\nbare LF turned into CRLF\r\n.\r\n"]
    append out [macros E "{msg_id}" <5A6B7C8D012345@mail.example.com>]
    append out [eom]
    append out [quit]
    return $out
}

# ----------------------------------------------------------------------
# Scripts for fuzz_session.c: one entry per event, see Decide there.
# ----------------------------------------------------------------------

array set verdictCode {
    continue 0 reject 1 discard 2 accept 3 tempfail 4 skip 5
}

# A short string for the script (GenString: a length byte below 23).
proc sstr {s} {
    if {[string length $s] > 22} {
	error "script string too long: $s"
    }
    binary format ca* [string length $s] $s
}

proc ev {verdict args} {
    if {[llength $args] > 7} {
	error "at most 7 actions per event"
    }
    set b [expr {$::verdictCode($verdict) | ([llength $args] << 3)}]
    return [binary format c $b][join $args ""]
}

proc idle {n} {
    string repeat [ev continue] $n
}

proc actAddHeader {name value} {
    return [binary format cc 0 0][sstr $name][sstr $value]
}
proc actInsHeader {index name value} {
    return [binary format ccI 0 1 $index][sstr $name][sstr $value]
}
proc actChgHeader {index name value} {
    return [binary format ccI 0 2 $index][sstr $name][sstr $value]
}
proc actChgFrom {addr {esmtp ""}} {
    if {$esmtp eq ""} {
	return [binary format ccc 0 3 0][sstr $addr]
    }
    return [binary format ccc 0 3 1][sstr $addr][sstr $esmtp]
}
proc actAddRcpt {addr} {
    return [binary format cc 0 4][sstr $addr]
}
proc actAddRcptPar {addr esmtp} {
    return [binary format ccc 0 5 1][sstr $addr][sstr $esmtp]
}
proc actDelRcpt {addr} {
    return [binary format cc 0 6][sstr $addr]
}
proc actQuarantine {reason} {
    return [binary format cc 0 7][sstr $reason]
}
# Replacement body of 'len' pattern bytes (times 4 when 'times4').
proc actReplaceBody {len {times4 0}} {
    binary format cScc 1 $len 0 [expr {$times4 ? 0 : 1}]
}
proc actProgress {} {
    binary format c 2
}
# rcode: 0 550, 1 451, 2 421; xcode: 0 none, 2 5.7.1, 3 4.2.0, 11 4.0.0.
proc actSetReply {rcode xcode args} {
    set out [binary format cccc 3 $rcode $xcode [llength $args]]
    if {[llength $args] > 4} {
	append out \0		;# Keep the count (see DoSetReply).
    }
    foreach line $args {
	if {[string length $line] > 14} {
	    error "reply line too long for a seed: $line"
	}
	append out [binary format c [string length $line]]$line
    }
    return $out
}
proc actSymlist {stage list} {
    return [binary format cc 4 [expr {$stage + 1}]][sstr $list]
}
# Look up the first name of a macro stage, with braces added if 'braces'.
proc actLookup {stage {braces 0}} {
    binary format ccc 5 [expr {$stage | ($braces ? 0x40 : 0)}] 0
}
# Look up the n-th macro name the harness has seen (cleared or not).
proc actLookupSeen {n} {
    return [binary format ccc 5 0x10 $n]
}
proc actLookupName {name} {
    return [binary format cc 5 0x80][sstr $name]
}

# ----------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------

proc writeFile {path bytes} {
    set f [open $path wb]
    puts -nonewline $f $bytes
    close $f
}

# flags: byte 0 of the session header; wanted: event mask; opts: byte 3.
proc sessionSeed {name stream {script ""} {flags 0} {wanted 0x1FFF} {opts 0}} {
    set head [binary format ccccS $flags [expr {$wanted >> 8}] \
	    [expr {$wanted & 0xFF}] $opts [string length $script]]
    writeFile [file join $::fuzzDir corpus session $name] \
	    $head$stream$script
    lappend ::streams $name $stream
}

proc wireSeed {name stream {selector 4}} {
    writeFile [file join $::fuzzDir corpus wire $name] \
	    [binary format c $selector]$stream
}

file mkdir [file join $fuzzDir corpus session] [file join $fuzzDir corpus wire]
foreach old [glob -nocomplain -directory [file join $fuzzDir corpus] */*] {
    file delete $old
}
set streams {}

# Plain traffic, every event answered with SMFIS_CONTINUE.
sessionSeed postfix-v6 [postfixSession messages 2] "" 0 0x1FFF 1
sessionSeed postfix-v6-ipv6 [postfixSession family 6 addr 2001:db8::7]
sessionSeed postfix-v2 [postfixSession version 2 protocol 0x7F]
sessionSeed postfix-v4 [postfixSession version 4 protocol 0x37F]
sessionSeed sendmail-v6 [sendmailSession] "" 0 0x1FFF 1
sessionSeed sendmail-leadspc [sendmailSession] "" 0x40
sessionSeed no-callbacks [postfixSession] "" 0 0
sessionSeed only-eom [postfixSession] "" 0 \
	[expr {(1 << 9) | (1 << 11)}]
sessionSeed chunked-reads [postfixSession] "" [expr {1 << 3}]
sessionSeed small-maxdata [postfixSession] "" 6

sessionSeed unix-socket [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[macros C j localhost "{daemon_name}" submission] \
	[connect localhost L 0 /var/run/postfix/smtpd.sock] \
	[helo localhost] \
	[mail <root@localhost>] [rcpt <root@localhost>] [data] \
	[header Subject cron] [eoh] [body "output\r\n"] [eom] [abort] \
	[quit]] ""]
sessionSeed unknown-peer [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[connect {[192.0.2.99]} U] \
	[macros U "{client_addr}" 192.0.2.99] \
	[unknownCmd "VRFY postmaster"] \
	[helo "bad helo with spaces"] \
	[quit]] ""]

# A full 65535-byte chunk, then end of message with and without a chunk.
set big [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[connect relay.example.net 4 2525 198.51.100.20] \
	[mail <big@example.net>] [rcpt <user@example.org>] [data] \
	[header Subject big] [eoh] \
	[body [bodyText 65535]] \
	[eom [bodyText 1000 7]] \
	[abort] [quit]] ""]
sessionSeed big-body $big

# QUIT_NC and a second session on the same connection.
sessionSeed quit-nc [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[postfixConnectMacros 192.0.2.7] \
	[connect a.example.net 4 1025 192.0.2.7] [helo a.example.net] \
	[mail <a@example.net>] [rcpt <u@example.org>] \
	[quitnc] \
	[macros C j mx.example.org] \
	[connect b.example.net 6 1026 2001:db8::b] [helo b.example.net] \
	[mail <b@example.net>] [rcpt <u@example.org>] [data] [eoh] \
	[eom] [quit]] ""] [ev continue]

# Modifications at end of message.  Events: negotiate connect helo
# envfrom envrcpt data header header eoh body eom close.
set oneMessage [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[macros C j mx.example.org "{daemon_name}" smtpd] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[helo client.example.net] \
	[macros M i 4XkQ1 "{mail_addr}" s@example.net] \
	[mail <s@example.net> BODY=8BITMIME] \
	[rcpt <u@example.org>] [data] \
	[header From <s@example.net>] [header Subject hello] [eoh] \
	[body "Hello\r\n"] [macros E i 4XkQ1] [eom] [abort] [quit]] ""]
sessionSeed eom-modify $oneMessage [join [list [idle 10] \
	[ev accept [actAddHeader X-Spam-Score 1.5] \
		[actInsHeader 0 Authentication-Results "mx; spf=pass"] \
		[actChgHeader 1 Subject ""] \
		[actChgFrom <new@example.net> RET=HDRS] \
		[actAddRcpt <archive@example.org>] \
		[actProgress] \
		[actReplaceBody 17500 1]]] ""]
sessionSeed eom-modify2 $oneMessage [join [list [idle 10] \
	[ev continue [actAddRcptPar <x@example.org> NOTIFY=NEVER] \
		[actDelRcpt <u@example.org>] \
		[actQuarantine "held for review"] \
		[actReplaceBody 0] [actReplaceBody 20000 1] \
		[actLookup 5] [actLookup 0 1]]] ""]
sessionSeed eom-reject-reply $oneMessage [join [list [idle 10] \
	[ev reject [actAddHeader X-Dropped yes] \
		[actSetReply 0 2 "spam detected" "100% sure"]]] ""]
sessionSeed eom-tempfail $oneMessage [join [list [idle 10] \
	[ev tempfail [actSetReply 1 3 "try later"] [actProgress]]] ""]
sessionSeed mods-outside-eom $oneMessage [join [list \
	[ev continue [actAddHeader X-A 1] [actProgress]] \
	[ev continue [actReplaceBody 10]] \
	[idle 8] \
	[ev discard [actQuarantine q]]] ""]

# Macro lifetimes: stages cleared by HELO, MAIL, RCPT, ABORT, QUIT_NC.
# Events: negotiate connect helo envfrom envrcpt helo close connect
# close.  Names seen: j i {mail_addr} {rcpt_addr} {x}.
sessionSeed macro-lifetimes [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[macros C j mx.example.org] \
	[connect c 4 1 192.0.2.1] \
	[macros M i Q1 "{mail_addr}" a@b] \
	[helo h1] \
	[macros M i Q2] [mail <a@b>] \
	[macros R "{rcpt_addr}" x] [rcpt <x@y>] \
	[abort] \
	[macros R "{x}" y] \
	[helo h2] \
	[quitnc] \
	[connect c2 4 2 192.0.2.2] [quit]] ""] \
	[join [list [idle 2] \
	[ev continue [actLookupSeen 0] [actLookupSeen 1] [actLookupSeen 2]] \
	[ev continue [actLookupSeen 1] [actLookupSeen 2]] \
	[ev continue [actLookupSeen 3] [actLookupSeen 1]] \
	[ev continue [actLookupSeen 3] [actLookupSeen 4] [actLookupSeen 0]] \
	[ev continue [actLookupSeen 0] [actLookupSeen 4]] \
	[ev continue [actLookupSeen 0] [actLookupSeen 1]] \
	[ev continue [actLookupSeen 0]]] ""]

# Macro lists requested in negotiation.
sessionSeed setsymlist $oneMessage [join [list \
	[ev continue [actSymlist 0 "j {daemon_name}"] \
		[actSymlist 2 "{mail_addr} i"] \
		[actSymlist 5 i] [actSymlist 5 again] \
		[actSymlist 7 bad]] \
	[ev continue [actLookup 0] [actLookupName "{daemon_name}"]] \
	[ev continue [actLookupName j]] \
	[ev continue [actLookup 2] [actLookupName "{i}"]]] ""]

# No-reply headers: a header verdict travels with the next body reply.
set offerNr [expr {0x1FFFFF}]
sessionSeed nr-header-reject [join [list \
	[optneg 6 0x1FF $offerNr] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[helo client.example.net] \
	[mail <s@example.net>] [rcpt <u@example.org>] [data] \
	[header From <s@example.net>] [header Subject spam] \
	[header X-More more] [eoh] \
	[body "Buy now\r\n"] [abort] \
	[mail <t@example.net>] [rcpt <u@example.org>] [data] \
	[header Subject ok] [eoh] [eom] [abort] [quit]] ""] \
	[join [list [idle 6] \
	[ev reject [actSetReply 0 2 "bad header"]] \
	[idle 10]] ""]
sessionSeed nr-eoh-discard [join [list \
	[optneg 6 0x1FF $offerNr] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[mail <s@example.net>] [rcpt <u@example.org>] [data] \
	[header Subject x] [eoh] [eom] [abort] [quit]] ""] \
	[join [list [idle 6] [ev discard]] ""]

# SKIP from the body callback.
sessionSeed body-skip [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[mail <s@example.net>] [rcpt <u@example.org>] [data] [eoh] \
	[body [bodyText 1000]] [body [bodyText 1000 9]] [eom [bodyText 10]] \
	[abort] [quit]] ""] \
	[join [list [idle 6] [ev skip] [idle 2]] ""]
sessionSeed body-skip-v2 [join [list \
	[optneg 2 0x3F 0x7F] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[mail <s@example.net>] [rcpt <u@example.org>] [data] [eoh] \
	[body [bodyText 1000]] [body [bodyText 1000 9]] [eom] \
	[quit]] ""] \
	[join [list [idle 6] [ev skip] [idle 2]] ""]

# Recipient rejected with a multi-line reply; the transaction goes on.
sessionSeed rcpt-reject [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[connect client.example.net 4 40001 192.0.2.7] [helo c] \
	[mail <s@example.net>] [rcpt <nobody@example.org>] \
	[rcpt <u@example.org>] [data] [eoh] [eom] [abort] \
	[mail <s2@example.net>] [mail <s3@example.net>] [quit]] ""] \
	[join [list [idle 4] \
	[ev reject [actSetReply 0 0 "no such user" "try again" "100%"]] \
	[idle 4]] ""]

# Connect refused; negotiation refused.
sessionSeed connect-421 $oneMessage [join [list [idle 1] \
	[ev tempfail [actSetReply 2 3 "too busy"]]] ""]
sessionSeed negotiate-refused $oneMessage [ev reject]

# The last body chunk rejects the message: no eom callback.  A reply of
# 33 lines is refused, one of 32 is used.
sessionSeed eom-chunk-reject [join [list \
	[optneg 6 0x1FF 0x1FFFFF] \
	[connect client.example.net 4 40001 192.0.2.7] \
	[mail <s@example.net>] [rcpt <u@example.org>] [data] [eoh] \
	[body [bodyText 100]] [eom [bodyText 50]] [abort] [quit]] ""] \
	[join [list [idle 7] \
	[ev reject [actSetReply 0 2 {*}[lrepeat 33 x]] \
		[actSetReply 0 2 {*}[lrepeat 32 y]]]] ""]

# Malformed and out-of-order traffic.
sessionSeed out-of-order [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[connect c 4 1 192.0.2.1] [mail <a@b>] [rcpt <c@d>] [data] \
	[rcpt <e@f>] [quit]] ""]
sessionSeed short-optneg [pkt O [binary format II 6 0x1FF]]
sessionSeed macro-no-stage [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[pkt D] [macros X a b] [pkt D C] [pkt D Ca\0b] \
	[connect c 4 1 192.0.2.1] [quit]] ""]
sessionSeed rcpt-outside [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[connect c 4 1 192.0.2.1] [rcpt <u@example.org>]] ""]
sessionSeed bad-connect [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[pkt C host\x004\x00]] ""]
sessionSeed before-optneg [join [list [connect c 4 1 1.2.3.4] [quit]] ""]
sessionSeed optneg-v1 [optneg 1 0 0]
sessionSeed optneg-zero [join [list [optneg 6 0 0] \
	[connect c 4 1 1.2.3.4] [mail <a@b>] [rcpt <c@d>] [data] \
	[header A b] [eoh] [eom]] ""]
sessionSeed empty-packet [optneg 6 0x1FF 0x1FFFFF]\0\0\0\0
sessionSeed eof-in-message [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[connect c 4 1 1.2.3.4] [mail <a@b>] [rcpt <c@d>] [data]] ""]
sessionSeed helo-in-message [join [list [optneg 6 0x1FF 0x1FFFFF] \
	[connect c 4 1 1.2.3.4] [mail <a@b>] [rcpt <c@d>] [helo again] \
	[mail <a@b>] [macros M i X] [mail <e@f>] [quit]] ""]

# The wire corpus: every stream above, and the milter's side.
foreach {name stream} $streams {
    wireSeed $name $stream
}
wireSeed milter-replies [join [list \
	[pkt O [binary format III 6 0x1FF 0x1004A0][binary format I 0]j\0[binary format I 2]{mail_addr}\0[binary format I 5]i\0] \
	[pkt O [binary format III 2 0x3F 0x40]] \
	[pkt c] [pkt a] [pkt r] [pkt t] [pkt d] [pkt s] [pkt p] \
	[pkt y "550-5.7.1 first line\r\n550 5.7.1 last line 100%%\0"] \
	[pkt y "421 4.3.2 shutting down\0"] \
	[pkt h [strs X-Spam yes]] \
	[pkt i [binary format I 0][strs Authentication-Results "mx; spf=pass"]] \
	[pkt m [binary format I 1][strs Subject ""]] \
	[pkt e [strs <new@example.net> RET=HDRS]] \
	[pkt + [strs <a@example.org>]] \
	[pkt 2 [strs <b@example.org> NOTIFY=NEVER]] \
	[pkt - [strs <u@example.org>]] \
	[pkt q [strs "held for review"]] \
	[pkt b [bodyText 5000]]] ""]
wireSeed connect-forms [join [list \
	[connect h 4 25 192.0.2.1] [connect h 6 25 IPv6:2001:db8::1] \
	[connect h 6 25 ipv6:::1] [connect h 6 25 2001:db8::2] \
	[connect h 6 25 IPv6:] [connect h L 0 /tmp/s] [connect h U] \
	[pkt C h\0U\0] [pkt C h\0X] [pkt C h\x004\x00\x19]] ""]
wireSeed small-limit [postfixSession] 2
wireSeed no-limit [sendmailSession] 7

puts "wrote [llength [glob -directory [file join $fuzzDir corpus session] *]]\
	session seeds and [llength [glob -directory [file join $fuzzDir corpus wire] *]]\
	wire seeds"
