# sendmail.tcl --
#
#	A private Sendmail 8.17 for the MTA tests (sourced by harness/mta.tcl).
#
#	Debian's sendmail-bin conflicts with postfix, so it is never
#	installed: scripts/deps.sh leaves sendmail-bin, sendmail-base and
#	sendmail-cf .debs in /var/cache/tclmilter-debs ($TCLMILTER_DEB_CACHE)
#	and this file unpacks them with "dpkg-deb -x" into a temporary
#	prefix.  The sendmail binary is copied without its setgid bit (it
#	runs as root here, and a setgid program would ignore
#	LD_LIBRARY_PATH).  Its shared libraries (libwrap0, libdb5.3, ...)
#	are ordinary packages that deps.sh installs.
#
#	sendmail.cf is generated with m4 from the unpacked cf/ tree: one
#	daemon per listener on 127.0.0.1 (or ::1), each with its own mail
#	filter (DaemonPortOptions I=), everything relayed to an smtp-sink,
#	queue in the temporary directory, no DNS (service.switch: files),
#	no ident lookups.  It runs in the foreground, as root:
#
#	    unshare -m sh -c 'mount --bind DIR/hosts /etc/hosts &&
#		exec sendmail -bD -C DIR/sendmail.cf'
#
#	The private mount namespace gives Sendmail an /etc/hosts that
#	qualifies this machine's host name for IPv4 and IPv6.  Without it,
#	Sendmail sleeps 60 s at start-up ("My unqualified host name ...
#	unknown; sleeping for retry") and the C library asks DNS for the
#	host name's AAAA record.  The system /etc/hosts is not changed.

namespace eval ::tm::sendmail {
    variable inst {}
    variable debs {sendmail-bin sendmail-base sendmail-cf}
}

proc ::tm::sendmail::debCache {} {
    if {[info exists ::env(TCLMILTER_DEB_CACHE)]} {
	return $::env(TCLMILTER_DEB_CACHE)
    }
    return /var/cache/tclmilter-debs
}

# ::tm::sendmail::debFiles --
#	The cached .debs (newest version of each), or an error naming the
#	missing package.

proc ::tm::sendmail::debFiles {} {
    variable debs
    set out {}
    foreach pkg $debs {
	set files [lsort -dictionary [glob -nocomplain \
		-directory [debCache] ${pkg}_*.deb]]
	if {![llength $files]} {
	    error "$pkg .deb not in [debCache] (run: bash scripts/deps.sh test)"
	}
	lappend out [lindex $files end]
    }
    return $out
}

# ::tm::sendmail::canPrivateHosts --
#	Can we bind-mount a file over /etc/hosts in a new mount namespace?

proc ::tm::sendmail::canPrivateHosts {} {
    if {[auto_execok unshare] eq "" || [auto_execok mount] eq ""} {
	return 0
    }
    set f /tmp/tclmilter-mta-hosts-[pid]
    ::tm::writeFile $f "127.0.0.1 tclmilter-probe\n"
    set ok [expr {![catch {exec unshare -m sh -c \
	    "mount --bind $f /etc/hosts && grep -q tclmilter-probe /etc/hosts" \
	    2>@1}]}]
    file delete $f
    return $ok
}

# ::tm::sendmail::canIPv6 --
#	Is loopback IPv6 usable (can we listen on ::1)?

proc ::tm::sendmail::canIPv6 {} {
    if {[catch {socket -server {apply {args {}}} -myaddr ::1 0} s]} {
	return 0
    }
    close $s
    return 1
}

# ::tm::sendmail::missing --
#	What this machine lacks to run a private Sendmail: a list of
#	reasons, empty if nothing is missing.

proc ::tm::sendmail::missing {} {
    set why {}
    if {![::tm::isRoot]} {
	lappend why "not running as root (sendmail -bD binds and runs as root)"
    }
    if {[catch {debFiles} msg]} {
	lappend why $msg
    }
    foreach prog {dpkg-deb m4 /usr/sbin/smtp-sink} {
	if {[auto_execok $prog] eq ""} {
	    lappend why "$prog not found"
	}
    }
    if {![canPrivateHosts]} {
	lappend why "cannot bind-mount a private /etc/hosts in a mount\
		namespace (unshare -m): Sendmail would sleep 60 s for its\
		unqualified host name and ask DNS"
    }
    return $why
}

# ::tm::sendmail::unpack --
#	Unpack the .debs into dir/root; returns the sendmail binary.

proc ::tm::sendmail::unpack {dir} {
    set root $dir/root
    file mkdir $root
    foreach deb [debFiles] {
	exec dpkg-deb -x $deb $root
    }
    set bin $root/usr/libexec/sendmail/sendmail
    # Not setgid: it runs as root anyway, and must honour the
    # environment (LD_LIBRARY_PATH) like any program.
    file attributes $bin -permissions 0755
    return $bin
}

# ::tm::sendmail::start --
#	Start a private Sendmail.  Options:
#	    -listeners DICT	name -> dict with keys
#				    filter	the X= equates, e.g.
#						"S=local:/p, F=T, T=R:10s"
#				    family	inet (default) or inet6
#				one daemon per listener, each using only
#				its own filter
#	    -mc TEXT		more m4 lines for the .mc file
#	Returns the instance dict (also kept as the current instance):
#	    dir mqueue sinkdir sinkport ports(dict name -> port) cf bin

proc ::tm::sendmail::start {args} {
    variable inst
    if {[dict size $inst]} {
	error "a private Sendmail is already running"
    }
    set o [dict merge {-listeners {} -mc ""} $args]
    set dir [::tm::tempdir -sendmail]
    set i [dict create dir $dir mqueue $dir/mqueue sinkdir $dir/sink \
	    sinkport [::tm::freePort] ports {} families {}]
    file mkdir [dict get $i mqueue] [dict get $i sinkdir]
    file attributes [dict get $i mqueue] -permissions 0700
    dict set i bin [unpack $dir]
    set cfdir $dir/root/usr/share/sendmail/cf

    set host [info hostname]
    set hosts "127.0.0.1 $host.tclmilter.test $host localhost\n"
    append hosts "::1 $host.tclmilter.test $host localhost6\n"
    ::tm::writeFile $dir/hosts $hosts
    ::tm::writeFile $dir/service.switch "hosts files\naliases files\n"
    ::tm::writeFile $dir/aliases ""

    set q `
    set mc "divert(-1)\ndivert(0)dnl\n"
    foreach {macro value} [list \
	    confDOMAIN_NAME mta.tclmilter.test \
	    confSERVICE_SWITCH_FILE $dir/service.switch \
	    confHOSTS_FILE $dir/hosts \
	    QUEUE_DIR [dict get $i mqueue] \
	    confPID_FILE $dir/sendmail.pid \
	    STATUS_FILE $dir/statistics \
	    ALIAS_FILE $dir/aliases \
	    confDONT_PROBE_INTERFACES True \
	    confDONT_BLAME_SENDMAIL TrustStickyBit \
	    confTO_IDENT 0 \
	    confMILTER_LOG_LEVEL 0 \
	    SMART_HOST {relay:[127.0.0.1]} \
	    RELAY_MAILER_ARGS "TCP \$h [dict get $i sinkport]" \
	    ESMTP_MAILER_ARGS "TCP \$h [dict get $i sinkport]" \
	    confDELIVERY_MODE background] {
	append mc "define(${q}$macro', ${q}$value')dnl\n"
    }
    append mc "OSTYPE(${q}linux')dnl\n"
    foreach feature {nocanonify no_default_msa promiscuous_relay
	    accept_unresolvable_domains accept_unqualified_senders} {
	append mc "FEATURE(${q}$feature')dnl\n"
    }
    dict for {name l} [dict get $o -listeners] {
	set family [expr {[dict exists $l family]
		? [dict get $l family] : "inet"}]
	set addr [expr {$family eq "inet6" ? "::1" : "127.0.0.1"}]
	set port [::tm::freePort $addr]
	dict set i ports $name $port
	dict set i families $name $family
	append mc "MAIL_FILTER(${q}$name', ${q}[dict get $l filter]')dnl\n"
	append mc "DAEMON_OPTIONS(${q}Port=$port, Addr=$addr,\
		Family=$family, Name=$name, I=$name')dnl\n"
    }
    append mc [dict get $o -mc] \n
    append mc "MAILER(${q}local')dnl\nMAILER(${q}smtp')dnl\n"
    ::tm::writeFile $dir/tclmilter.mc $mc
    exec m4 -D_CF_DIR_=$cfdir/ $cfdir/m4/cf.m4 $dir/tclmilter.mc \
	    > $dir/sendmail.cf 2> $dir/m4.out
    dict set i cf $dir/sendmail.cf

    ::tm::sink::start [dict get $i sinkdir] [dict get $i sinkport]
    set inst $i
    ::tm::atCleanup ::tm::sendmail::stop
    set pid [::tm::background $dir/sendmail.out unshare -m sh -c \
	    "mount --bind $dir/hosts /etc/hosts &&\
	    exec [dict get $i bin] -bD -C $dir/sendmail.cf"]
    dict set inst pid $pid
    if {![::tm::waitUntil {[::tm::sendmail::ready]
	    || ![::tm::alive [dict get $::tm::sendmail::inst pid]]} 15000]
	    || ![ready]} {
	error "private Sendmail did not come up:\
		[::tm::readFile $dir/sendmail.out]"
    }
    return $inst
}

proc ::tm::sendmail::ready {} {
    variable inst
    dict for {name port} [dict get $inst ports] {
	if {![::tm::listening $port [dict get $inst families $name]]} {
	    return 0
	}
    }
    return 1
}

# ::tm::sendmail::stop --
#	Stop the current private Sendmail (if any) and its smtp-sink.

proc ::tm::sendmail::stop {} {
    variable inst
    if {![dict size $inst]} {
	return
    }
    # The daemon, then any child still delivering (its pid file names
    # the daemon; children are in its process group).
    if {[dict exists $inst pid]} {
	::tm::kill [dict get $inst pid]
    }
    set sinkPid [string trim [::tm::readFile \
	    [dict get $inst sinkdir]/sink.pid]]
    ::tm::kill $sinkPid
    set inst {}
}

proc ::tm::sendmail::port {listener} {
    variable inst
    return [dict get $inst ports $listener]
}

# ::tm::sendmail::send --
#	::tm::smtp::send to a listener (-listener NAME).

proc ::tm::sendmail::send {args} {
    variable inst
    set listener [dict get $args -listener]
    dict unset args -listener
    set host [expr {[dict get $inst families $listener] eq "inet6"
	    ? "::1" : "127.0.0.1"}]
    return [::tm::smtp::send $host [port $listener] {*}$args]
}

# ::tm::sendmail::delivered --
#	Wait until queue id qid has been delivered (its queue file is gone
#	and smtp-sink holds a copy), then return the captured messages.

proc ::tm::sendmail::delivered {qid {timeoutMs 15000}} {
    variable inst
    if {$qid eq ""} {
	error "no queue id (the message was not accepted)"
    }
    set pattern "\\(8\\.\[0-9.\]+/\[0-9.\]+\\) with E?SMTP id $qid\\M"
    set sinkdir [dict get $inst sinkdir]
    set qf [dict get $inst mqueue]/qf$qid
    if {![::tm::waitUntil {![file exists $qf]
	    && [llength [::tm::sink::find $sinkdir $pattern]]} $timeoutMs]} {
	error "$qid was not delivered (queue: [glob -nocomplain -tails \
		-directory [dict get $inst mqueue] *])"
    }
    return [::tm::sink::find $sinkdir $pattern]
}

# ::tm::sendmail::quarantined --
#	Quarantined messages: a dict queue id -> reason, from the hf*
#	queue files (Sendmail renames a quarantined qf file to hf and
#	records the reason on its "q" line).

proc ::tm::sendmail::quarantined {} {
    variable inst
    set out {}
    foreach file [glob -nocomplain -directory [dict get $inst mqueue] hf*] {
	set reason ""
	foreach line [split [::tm::readFile $file] \n] {
	    if {[string index $line 0] eq "q"} {
		set reason [string range $line 1 end]
	    }
	}
	dict set out [string range [file tail $file] 2 end] $reason
    }
    return $out
}
