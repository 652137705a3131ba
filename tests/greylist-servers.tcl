# greylist-servers.tcl --
#
#	Real servers for tests/greylist.test, on loopback only, in temporary
#	directories of tests/harness.tcl (::tm::tempdir), stopped and
#	removed by ::tm::finish:
#
#	    ::glsrv::pg::*	a private PostgreSQL 15 (Debian's postgresql):
#				initdb into a temporary directory and the
#				server run as user nobody (PostgreSQL refuses
#				to run as root), through setpriv; it listens
#				on 127.0.0.1 and a free port, and trusts
#				local connections for user "greylist"
#	    ::glsrv::dns::*	dnsmasq (Debian's dnsmasq-base) in the
#				foreground on 127.0.0.1 and a free port,
#				serving the test DNSBL zones, with a zone
#				forwarded to a UDP socket that never answers
#	    ::glsrv::milter::*	examples/greylist/greylist.tcl as a child
#				process with a generated configuration file
#
#	Needs tests/harness.tcl sourced first.
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require Tcl 8.6

namespace eval ::glsrv {
    variable pgbin /usr/lib/postgresql/15/bin
    variable example [file join $::tm::srcDir examples greylist greylist.tcl]
}

# glsrv::asNobody --
#	The command prefix that runs a program as user nobody, group
#	nogroup, in directory dir.

proc ::glsrv::asNobody {dir} {
    return [list setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    -- env -C $dir]
}

# glsrv::missing --
#	What this machine lacks for the servers: a list of reasons.

proc ::glsrv::missing {what} {
    variable pgbin
    set why {}
    switch -- $what {
	postgres {
	    if {![::tm::isRoot]} {
		lappend why "not root (the server runs as user nobody)"
	    }
	    foreach prog [list $pgbin/initdb $pgbin/postgres $pgbin/pg_isready] {
		if {![file executable $prog]} {
		    lappend why "$prog missing (apt-get install postgresql)"
		}
	    }
	    if {[auto_execok setpriv] eq ""} {
		lappend why "setpriv missing"
	    }
	    if {[catch {exec id -u nobody}] || [catch {exec getent group nogroup}]} {
		lappend why "no user nobody or group nogroup"
	    }
	    if {[catch {exec [info nameofexecutable] << \
		    "package require tdbc::postgres" 2>@1}]} {
		lappend why "no tdbc::postgres (apt-get install\
			tcl8.6-tdbc-postgres)"
	    }
	}
	dnsmasq {
	    if {[auto_execok dnsmasq] eq ""} {
		lappend why "dnsmasq missing (apt-get install dnsmasq-base)"
	    }
	    foreach pkg {dns udp} {
		if {[catch {package require $pkg}]} {
		    lappend why "no Tcl package $pkg (apt-get install tcllib\
			    tcl-udp)"
		}
	    }
	}
    }
    return $why
}

# ---------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------

namespace eval ::glsrv::pg {
    variable inst {}		;# dir data port pid log
}

# glsrv::pg::start --
#	initdb (once) and start the server.  Returns the instance dict.

proc ::glsrv::pg::start {} {
    variable inst
    set pgbin $::glsrv::pgbin
    if {![dict size $inst]} {
	set dir [::tm::tempdir -pg]
	set data $dir/data
	file mkdir $data $dir/sock
	exec chown nobody:nogroup $data $dir/sock
	file attributes $data -permissions 0700
	exec {*}[::glsrv::asNobody $dir] $pgbin/initdb -D $data -U greylist \
		--auth=trust --no-locale -E UTF8 --no-sync \
		>& $dir/initdb.log
	set inst [dict create dir $dir data $data port [::tm::freePort] \
		pid {} log $dir/postgres.log]
	::tm::atCleanup ::glsrv::pg::stop
	run
	exec {*}[::glsrv::asNobody $dir] $pgbin/createdb -h 127.0.0.1 \
		-p [dict get $inst port] -U greylist greylist >& $dir/createdb.log
    } else {
	run
    }
    return $inst
}

# glsrv::pg::run --
#	Start the server on the instance's data and port; wait until it
#	takes connections.

proc ::glsrv::pg::run {} {
    variable inst
    set pgbin $::glsrv::pgbin
    if {[dict get $inst pid] ne "" && [::tm::alive [dict get $inst pid]]} {
	return
    }
    set dir [dict get $inst dir]
    set pid [::tm::background [dict get $inst log] {*}[::glsrv::asNobody $dir] \
	    $pgbin/postgres -D [dict get $inst data] -h 127.0.0.1 \
	    -p [dict get $inst port] -k $dir/sock -c fsync=off \
	    -c synchronous_commit=off -c full_page_writes=off \
	    -c max_connections=60]
    dict set inst pid $pid
    if {![::tm::waitUntil {![catch {exec $::glsrv::pgbin/pg_isready -q \
	    -h 127.0.0.1 -p [dict get $::glsrv::pg::inst port]}]
	    || ![::tm::alive $pid]} 20000] || ![::tm::alive $pid]} {
	error "PostgreSQL did not start:\
		[::tm::readFile [dict get $inst log]]"
    }
    return
}

# glsrv::pg::stop --
#	Fast shutdown (SIGINT: sessions are ended, as when an
#	administrator stops the server); the data stay for run.

proc ::glsrv::pg::stop {} {
    variable inst
    if {![dict size $inst] || [dict get $inst pid] eq ""} {
	return
    }
    set pid [dict get $inst pid]
    ::glsrv::pg::resume
    catch {exec kill -INT $pid}
    if {![::tm::waitUntil {![::tm::alive $pid]} 15000]} {
	::tm::kill $pid 1000
    }
    catch {exec true}
    dict set inst pid {}
    return
}

# glsrv::pg::processes --
#	The server and its children (the backends).

proc ::glsrv::pg::processes {} {
    variable inst
    set pid [dict get $inst pid]
    set out [list $pid]
    if {![catch {exec pgrep -P $pid} kids]} {
	lappend out {*}$kids
    }
    return $out
}

# glsrv::pg::hang, glsrv::pg::resume --
#	Freeze every process of the server (SIGSTOP), as a server that
#	hangs or a network that drops everything; then let them go on.

proc ::glsrv::pg::hang {} {
    foreach p [processes] {
	catch {exec kill -STOP $p}
    }
}

proc ::glsrv::pg::resume {} {
    variable inst
    if {![dict size $inst] || [dict get $inst pid] eq ""} {
	return
    }
    foreach p [processes] {
	catch {exec kill -CONT $p}
    }
}

proc ::glsrv::pg::port {} {
    variable inst
    return [dict get $inst port]
}

# glsrv::pg::query --
#	Run SQL through psql as user greylist; the output rows, fields
#	separated by "|".

proc ::glsrv::pg::query {sql} {
    variable inst
    return [exec psql -h 127.0.0.1 \
	    -p [dict get $inst port] -U greylist -d greylist -A -t -c $sql]
}

# ---------------------------------------------------------------------
# dnsmasq
# ---------------------------------------------------------------------

namespace eval ::glsrv::dns {
    variable inst {}		;# dir port pid log blackhole
}

# glsrv::dns::start --
#	dnsmasq serving the zones in records, a dict zone -> list of
#	listed IPv4 addresses (each gets A 127.0.0.2); any other name in
#	those zones is NXDOMAIN.  Each zone in silent is forwarded to a
#	UDP socket of this process that never answers.  Returns the port.

proc ::glsrv::dns::start {records silent} {
    variable inst
    package require udp
    set dir [::tm::tempdir -dns]
    set port [::tm::freePort]
    set hole [udp_open]
    set holePort [lindex [fconfigure $hole -myport] 0]
    set args [list --no-daemon --conf-file=/dev/null --no-resolv \
	    --no-hosts --port=$port --listen-address=127.0.0.1 \
	    --bind-interfaces --pid-file=$dir/dnsmasq.pid --user=root \
	    --log-queries --log-facility=$dir/queries.log]
    dict for {zone addresses} $records {
	lappend args --local=/$zone/
	foreach a $addresses {
	    set name [join [lreverse [split $a .]] .].$zone
	    lappend args --host-record=$name,127.0.0.2
	}
    }
    foreach zone $silent {
	lappend args --server=/$zone/127.0.0.1#$holePort
    }
    set pid [::tm::background $dir/dnsmasq.out dnsmasq {*}$args]
    set inst [dict create dir $dir port $port pid $pid \
	    log $dir/queries.log hole $hole]
    ::tm::atCleanup ::glsrv::dns::stop
    if {![::tm::waitUntil {[::tm::listening $port]
	    || ![::tm::alive $pid]} 10000] || ![::tm::alive $pid]} {
	error "dnsmasq did not start: [::tm::readFile $dir/dnsmasq.out]"
    }
    return $port
}

proc ::glsrv::dns::stop {} {
    variable inst
    if {![dict size $inst]} {
	return
    }
    ::tm::kill [dict get $inst pid]
    catch {close [dict get $inst hole]}
    set inst {}
}

# glsrv::dns::queries --
#	The names dnsmasq was asked for so far (from its query log).

proc ::glsrv::dns::queries {} {
    variable inst
    set out {}
    if {[file exists [dict get $inst log]]} {
	foreach line [split [::tm::readFile [dict get $inst log]] \n] {
	    if {[regexp {query\[A\] (\S+) from} $line -> name]} {
		lappend out $name
	    }
	}
    }
    return $out
}

# ---------------------------------------------------------------------
# The greylisting milter
# ---------------------------------------------------------------------

namespace eval ::glsrv::milter {}

# glsrv::milter::start --
#	Run examples/greylist/greylist.tcl with a configuration file made
#	of settings (a dict: setting -> value), on a fresh unix socket
#	that Postfix may use, logging to a file.  Waits for its "ready"
#	line.  Returns a dict: pid dir spec postfix log conf.

proc ::glsrv::milter::start {settings} {
    set dir [::tm::tempdir -grey]
    set m [dict create dir $dir spec unix:$dir/g.sock \
	    postfix unix:$dir/g.sock log $dir/greylist.log \
	    conf $dir/greylist.conf]
    set conf "# generated by tests/greylist-servers.tcl\n"
    dict for {name value} [dict merge [dict create \
	    connection [dict get $m spec] socket_mode 0666 \
	    log_file [dict get $m log] sqlite_file $dir/greylist.db] \
	    $settings] {
	append conf [list $name $value] \n
    }
    ::tm::writeFile [dict get $m conf] $conf
    ::tm::writeFile [dict get $m log] ""
    set saved [array get ::env TCLLIBPATH]
    set ::env(TCLLIBPATH) $::env(TCLLIBPATH)
    try {
	set pid [::tm::background $dir/greylist.out [info nameofexecutable] \
		$::glsrv::example -config [dict get $m conf]]
    } finally {
	unset ::env(TCLLIBPATH)
	array set ::env $saved
    }
    dict set m pid $pid
    if {![::tm::waitUntil {[regexp {notice: ready on} \
	    [::tm::readFile [dict get $m log]]] || ![::tm::alive $pid]} \
	    20000] || ![::tm::alive $pid]} {
	::tm::kill $pid
	error "greylist.tcl did not start:\
		[::tm::readFile $dir/greylist.out]\
		[::tm::readFile [dict get $m log]]"
    }
    return $m
}

proc ::glsrv::milter::stop {m} {
    ::tm::kill [dict get $m pid]
}

# glsrv::milter::log --
#	The log lines after the first skip lines, without their time and
#	process prefix ("LEVEL: message").

proc ::glsrv::milter::log {m {skip 0}} {
    set out {}
    set lines [split [string trimright \
	    [::tm::readFile [dict get $m log] auto] \n] \n]
    foreach line [lrange $lines $skip end] {
	if {[regexp {^\S+ \S+\[\d+\] (.*)$} $line -> rest]} {
	    lappend out $rest
	}
    }
    return $out
}

# glsrv::milter::mark --
#	The number of log lines so far (for log's skip).

proc ::glsrv::milter::mark {m} {
    return [llength [split [string trimright \
	    [::tm::readFile [dict get $m log] auto] \n] \n]]
}
