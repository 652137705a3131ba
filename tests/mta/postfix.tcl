# postfix.tcl --
#
#	A private Postfix instance for the MTA tests (sourced by harness/mta.tcl).
#
#	Debian's postfix package, installed with debconf "No configuration",
#	provides the programs; the system instance (/etc/postfix) is neither
#	used nor started.  The private instance has its own config_directory,
#	queue_directory and data_directory under a temporary directory:
#
#	    master -c DIR/etc -w	master runs as root (and daemonizes
#					once ready), its daemons as
#					mail_owner=postfix, with
#					setgid_group=postdrop; the queue
#					directories are made first with the
#					owners "postfix start" would give
#					them ("postfix -c DIR/etc start"
#					works too, but spends ~3 s checking
#					a fresh queue)
#	    postfix -c DIR/etc stop
#
#	It listens only on 127.0.0.1 (one smtpd per listener, each on its
#	own free port, each with its own -o overrides), relays everything
#	to an smtp-sink on another free port that dumps each delivered
#	message to a file (smtp-sink -d), logs to DIR/maillog through
#	postlogd (maillog_file; there is no syslog here) and never looks
#	anything up in DNS.

namespace eval ::tm::postfix {
    variable inst {}
    variable sbin /usr/lib/postfix/sbin
}

# ::tm::postfix::missing --
#	What this machine lacks to run a private Postfix: a list of
#	reasons, empty if nothing is missing.

proc ::tm::postfix::missing {} {
    variable sbin
    set why {}
    if {![::tm::isRoot]} {
	lappend why "not running as root (postfix master must start as root)"
    }
    foreach prog [list /usr/sbin/postfix /usr/sbin/smtp-sink \
	    /usr/sbin/postcat /usr/sbin/postqueue $sbin/master $sbin/smtpd] {
	if {![file executable $prog]} {
	    lappend why "$prog missing (apt-get install postfix)"
	}
    }
    if {[catch {exec id -u postfix}]} {
	lappend why "no user postfix"
    }
    if {[catch {exec getent group postdrop}]} {
	lappend why "no group postdrop"
    }
    return $why
}

# ::tm::postfix::start --
#	Start a private Postfix.  Options:
#	    -milter SPEC	smtpd_milters (Postfix syntax), for every
#				listener unless it overrides smtpd_milters
#	    -params DICT	more main.cf parameters
#	    -listeners DICT	name -> dict of parameters for that smtpd
#				(master.cf -o); a listener "default" with no
#				overrides always exists
#	Returns the instance dict (also kept as the current instance):
#	    dir etc spool log sinkdir sinkport ports(dict name -> port)

proc ::tm::postfix::start {args} {
    variable inst
    variable sbin
    if {[dict size $inst]} {
	error "a private Postfix is already running"
    }
    set o [dict merge {-milter "" -params {} -listeners {}} $args]
    set listeners [dict merge {default {}} [dict get $o -listeners]]

    set dir [::tm::tempdir -postfix]
    set etc $dir/etc
    set spool $dir/spool
    set data $dir/data
    file mkdir $etc $spool $data
    file attributes $data -owner postfix
    set i [dict create dir $dir etc $etc spool $spool log $dir/maillog \
	    sinkdir $dir/sink sinkport [::tm::freePort] ports {}]
    file mkdir [dict get $i sinkdir]
    ::tm::sink::start [dict get $i sinkdir] [dict get $i sinkport]

    set main [dict create \
	compatibility_level 3.6 \
	queue_directory $spool \
	data_directory $data \
	command_directory /usr/sbin \
	daemon_directory /usr/lib/postfix/sbin \
	meta_directory /etc/postfix \
	shlib_directory /usr/lib/postfix \
	mail_owner postfix \
	setgid_group postdrop \
	maillog_file [dict get $i log] \
	maillog_file_prefixes $dir \
	myhostname mta.tclmilter.test \
	mydomain tclmilter.test \
	myorigin {$myhostname} \
	mydestination {} \
	alias_maps {} \
	alias_database {} \
	local_recipient_maps {} \
	inet_interfaces loopback-only \
	inet_protocols ipv4 \
	mynetworks 127.0.0.0/8 \
	smtpd_relay_restrictions {permit_mynetworks, reject} \
	smtpd_peername_lookup no \
	smtpd_error_sleep_time 0 \
	smtpd_soft_error_limit 100 \
	smtpd_hard_error_limit 100 \
	local_header_rewrite_clients {} \
	relayhost "\[127.0.0.1\]:[dict get $i sinkport]" \
	smtp_dns_support_level disabled \
	smtp_host_lookup native \
	smtputf8_enable no \
	biff no \
	smtpd_milters [dict get $o -milter] \
	milter_default_action tempfail]
    set main [dict merge $main [dict get $o -params]]

    set master ""
    dict for {name params} $listeners {
	set port [::tm::freePort]
	dict set i ports $name $port
	append master "127.0.0.1:$port inet n - n - - smtpd\n"
	append master "  -o syslog_name=postfix/$name\n"
	dict for {param value} $params {
	    # Values may hold spaces: pass them through main.cf.
	    dict set main tm_${name}_$param $value
	    append master "  -o $param=\$tm_${name}_$param\n"
	}
    }
    append master [join {
	{pickup    unix  n - n 60    1 pickup}
	{cleanup   unix  n - n -     0 cleanup}
	{qmgr      unix  n - n 300   1 qmgr}
	{rewrite   unix  - - n -     - trivial-rewrite}
	{bounce    unix  - - n -     0 bounce}
	{defer     unix  - - n -     0 bounce}
	{trace     unix  - - n -     0 bounce}
	{verify    unix  - - n -     1 verify}
	{flush     unix  n - n 1000? 0 flush}
	{proxymap  unix  - - n -     - proxymap}
	{smtp      unix  - - n -     - smtp}
	{relay     unix  - - n -     - smtp}
	{showq     unix  n - n -     - showq}
	{error     unix  - - n -     - error}
	{retry     unix  - - n -     - error}
	{discard   unix  - - n -     - discard}
	{anvil     unix  - - n -     1 anvil}
	{scache    unix  - - n -     1 scache}
	{postlog   unix-dgram n - n - 1 postlogd}
    } \n] \n

    set cf ""
    dict for {param value} $main {
	append cf "$param = $value\n"
    }
    ::tm::writeFile $etc/main.cf $cf
    ::tm::writeFile $etc/master.cf $master
    # Postfix waits (up to ~2 s) for a main.cf written in this second to
    # settle; it was not edited, so backdate it.
    set past [expr {[clock seconds] - 60}]
    file mtime $etc/main.cf $past
    file mtime $etc/master.cf $past

    set inst $i
    ::tm::atCleanup ::tm::postfix::stop
    makeQueue $spool
    if {[catch {exec $sbin/master -c $etc -w 2>@1} msg]} {
	error "postfix master failed to start: $msg\n[log]"
    }
    set ok [::tm::waitUntil {[::tm::postfix::ready]} 15000]
    if {!$ok} {
	error "private Postfix did not come up:\n[log]"
    }
    return $inst
}

# ::tm::postfix::makeQueue --
#	Create the queue directories with the owners and modes that
#	"postfix start" (post-install create-missing, driven by
#	/etc/postfix/postfix-files) would give them.  Doing it here saves
#	the seconds "postfix start"/"postfix check" spend on a fresh queue.

proc ::tm::postfix::makeQueue {spool} {
    foreach sub {active bounce corrupt defer deferred flush hold incoming
	    private saved trace} {
	file mkdir $spool/$sub
	file attributes $spool/$sub -owner postfix -group root \
		-permissions 0700
    }
    file mkdir $spool/maildrop $spool/public $spool/pid
    file attributes $spool/maildrop -owner postfix -group postdrop \
	    -permissions 0730
    file attributes $spool/public -owner postfix -group postdrop \
	    -permissions 0710
    file attributes $spool/pid -owner root -group root -permissions 0755
}

# ::tm::postfix::ready --
#	Master runs and every smtpd listener is bound.

proc ::tm::postfix::ready {} {
    variable inst
    if {[masterPid] eq ""} {
	return 0
    }
    foreach port [dict values [dict get $inst ports]] {
	if {![::tm::listening $port]} {
	    return 0
	}
    }
    return 1
}

proc ::tm::postfix::masterPid {} {
    variable inst
    set file [dict get $inst spool]/pid/master.pid
    if {[catch {string trim [::tm::readFile $file]} pid]
	    || ![string is integer -strict $pid] || ![::tm::alive $pid]} {
	return ""
    }
    return $pid
}

# ::tm::postfix::stop --
#	Stop the current private Postfix (if any) and its smtp-sink.

proc ::tm::postfix::stop {} {
    variable inst
    if {![dict size $inst]} {
	return
    }
    set pid [masterPid]
    catch {exec /usr/sbin/postfix -c [dict get $inst etc] stop 2>@1}
    if {$pid ne ""} {
	if {![::tm::waitUntil {![::tm::alive $pid]} 10000]} {
	    ::tm::kill $pid 1000
	}
    }
    set sinkPid [string trim [::tm::readFile \
	    [dict get $inst sinkdir]/sink.pid]]
    ::tm::kill $sinkPid
    set inst {}
}

# ::tm::postfix::port --
#	The SMTP port of a listener.

proc ::tm::postfix::port {{listener default}} {
    variable inst
    return [dict get $inst ports $listener]
}

# ::tm::postfix::send --
#	::tm::smtp::send to a listener (-listener NAME, default "default").

proc ::tm::postfix::send {args} {
    set listener default
    if {[dict exists $args -listener]} {
	set listener [dict get $args -listener]
	dict unset args -listener
    }
    return [::tm::smtp::send 127.0.0.1 [port $listener] {*}$args]
}

# ::tm::postfix::log --
#	The instance's mail log so far.

proc ::tm::postfix::log {} {
    variable inst
    if {![dict size $inst] || ![file exists [dict get $inst log]]} {
	return ""
    }
    return [::tm::readFile [dict get $inst log] auto]
}

# ::tm::postfix::waitLog --
#	Wait until the mail log matches a regexp.  Returns 1 or 0.

proc ::tm::postfix::waitLog {pattern {timeoutMs 15000}} {
    return [::tm::waitUntil {
	[regexp -line -- $pattern [::tm::postfix::log]]
    } $timeoutMs]
}

# ::tm::postfix::logLines --
#	Mail log lines matching a regexp.

proc ::tm::postfix::logLines {pattern} {
    return [lsearch -all -inline -regexp [split [log] \n] $pattern]
}

# ::tm::postfix::delivered --
#	Wait until queue id qid has left the queue, then return the messages
#	smtp-sink captured for it (parsed; usually one).  An error if qid
#	did not leave the queue in time.

proc ::tm::postfix::delivered {qid {timeoutMs 15000}} {
    variable inst
    if {$qid eq ""} {
	error "no queue id (the message was not accepted)"
    }
    if {![waitLog "\\m$qid: removed\$" $timeoutMs]} {
	error "$qid was not delivered:\n[join [logLines $qid] \n]"
    }
    return [::tm::sink::find [dict get $inst sinkdir] "\\(Postfix\\) with E?SMTP id $qid\\M"]
}

# ::tm::postfix::deliver1 --
#	Send one message (options as for send) and return the one captured
#	copy; an error unless exactly one copy arrived.  The SMTP result
#	dict is stored in the caller's variable named by -result, if given.

proc ::tm::postfix::deliver1 {args} {
    if {[dict exists $args -result]} {
	upvar 1 [dict get $args -result] result
	dict unset args -result
    }
    set result [send {*}$args]
    if {![dict exists $result queueid]} {
	error "message not accepted: $result"
    }
    set msgs [delivered [dict get $result queueid]]
    if {[llength $msgs] != 1} {
	error "expected one delivered copy, got [llength $msgs]"
    }
    return [lindex $msgs 0]
}

# ::tm::postfix::held --
#	Queue ids in the hold queue (quarantined messages).

proc ::tm::postfix::held {} {
    variable inst
    set out {}
    foreach file [glob -nocomplain -directory [dict get $inst spool]/hold *] {
	lappend out [file tail $file]
    }
    return [lsort $out]
}

# ::tm::postfix::postqueue --
#	The queue listing from "postqueue -c ETC -j" as a list of
#	{queue_name queue_id sender recipients} (recipients is a list of
#	addresses).

proc ::tm::postfix::postqueue {} {
    variable inst
    set out {}
    set json [exec /usr/sbin/postqueue -c [dict get $inst etc] -j]
    foreach line [split $json \n] {
	if {$line eq ""} {
	    continue
	}
	regexp {"queue_name": *"([^"]*)"} $line -> queue
	regexp {"queue_id": *"([^"]*)"} $line -> id
	regexp {"sender": *"([^"]*)"} $line -> sender
	set rcpts [regexp -all -inline {"address": *"([^"]*)"} $line]
	lappend out [list $queue $id $sender \
		[lmap {- a} $rcpts {set a}]]
    }
    return $out
}

# ::tm::postfix::postcat --
#	The queue file of qid as printed by "postcat -c ETC -q".

proc ::tm::postfix::postcat {qid} {
    variable inst
    return [exec /usr/sbin/postcat -c [dict get $inst etc] -q $qid]
}
