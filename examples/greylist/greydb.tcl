# greydb.tcl --
#
#	The database side of the greylisting milter (greylist.tcl).  Each
#	interpreter that runs callbacks (the owner, or every worker) starts
#	one thread that sources this file and owns one database connection:
#	SQLite through tdbc::sqlite3 (WAL mode, several connections to one
#	file are safe) or PostgreSQL through tdbc::postgres (several milter
#	hosts share one server).  The callbacks never touch the database
#	themselves: they send a request to this thread and wait, with a time
#	limit of their own, for the answer (greylib.tcl, greylist::db).  A
#	database that is down or hangs therefore never holds up the MTA.
#
#	A request is "::greydb::request replyThread token op arg ...".  The
#	answer goes back as "::greylist::db::reply token code result" where
#	code is 0 (result is the op's dict) or 1 (result is the error).
#
#	All times are milliseconds since the epoch, as integers.
#
# Copyright (c) 2026 The TclMilter developers.
#
# See the file "license.terms" for information on usage and redistribution
# of this file, and for a DISCLAIMER OF ALL WARRANTIES.

package require Tcl 8.6
package require Thread

namespace eval ::greydb {
    variable cfg {}		;# the milter's settings (a dict)
    variable db {}		;# the tdbc connection, or "" if none
    variable stmts {}		;# statement name -> tdbc statement
    variable lastError ""	;# why the last connection attempt failed
    variable lastTry 0		;# when it was made (ms)
}

# greydb::init --
#	Keep the settings; the connection is made by the first request.

proc ::greydb::init {config} {
    variable cfg $config
    if {[dict get $cfg database] eq "sqlite"} {
	package require tdbc::sqlite3
    } else {
	package require tdbc::postgres
    }
    return
}

# greydb::request --
#	Run one operation and send its outcome back to the thread that
#	asked.  Errors never escape: they are the answer.

proc ::greydb::request {replyThread token op args} {
    set code [catch {do $op $args} result]
    if {$code != 0} {
	set code 1
    }
    catch {
	thread::send -async $replyThread \
		[list ::greylist::db::reply $token $code $result]
    }
    return
}

# greydb::do --
#	Connect if need be, run ops::$op.  A failed statement closes the
#	connection, so that the next request starts afresh (after a lost
#	server, a statement fails and the connection is useless).

proc ::greydb::do {op arglist} {
    variable db
    variable cfg
    if {$op ni {rcpt envfrom maintain ping}} {
	error "unknown database operation \"$op\""
    }
    # A connection that worked before may have been lost since (the
    # server restarted): then one more try, on a new connection.
    set fresh [expr {$db eq ""}]
    connect
    if {[catch {ops::$op {*}$arglist} result opts] == 0} {
	return $result
    }
    disconnect
    if {!$fresh} {
	connect
	if {[catch {ops::$op {*}$arglist} result opts] == 0} {
	    return $result
	}
	disconnect
    }
    if {[string trim $result] eq ""} {
	set result "the [dict get $cfg database] statement failed"
    }
    return -options $opts $result
}

# greydb::connect --
#	Make the connection and the tables, unless there is one.  After a
#	failure, no new attempt is made for db_retry ms: requests fail at
#	once with the same error.

proc ::greydb::connect {} {
    variable cfg
    variable db
    variable lastError
    variable lastTry
    if {$db ne ""} {
	return
    }
    set now [clock milliseconds]
    if {$lastError ne "" && $now - $lastTry < [dict get $cfg db_retry]} {
	error $lastError
    }
    set lastTry $now
    try {
	if {[dict get $cfg database] eq "sqlite"} {
	    file mkdir [file dirname [dict get $cfg sqlite_file]]
	    # A locked database gives up in half the time the callback
	    # waits, so that contention is an error, not a timeout.
	    set db [tdbc::sqlite3::connection new [dict get $cfg sqlite_file] \
		    -timeout [expr {[dict get $cfg db_timeout] / 2}]]
	    # WAL: readers do not block the writer, and several
	    # connections (workers, processes) share the file safely;
	    # NORMAL: no fsync per commit (a crash may lose the last
	    # moments of greylisting state, never corrupt it).
	    $db allrows {PRAGMA journal_mode = WAL}
	    $db allrows {PRAGMA synchronous = NORMAL}
	} else {
	    # -timeout is libpq's connect_timeout, in whole seconds (at
	    # least 2); statement_timeout is in milliseconds.
	    set opts [list -host [dict get $cfg pg_host] \
		    -port [dict get $cfg pg_port] \
		    -database [dict get $cfg pg_database] \
		    -user [dict get $cfg pg_user] \
		    -timeout [expr {max(2,
			([dict get $cfg db_timeout] + 999) / 1000)}] \
		    -options "-c statement_timeout=[dict get $cfg db_timeout]"]
	    if {[dict get $cfg pg_password] ne ""} {
		lappend opts -password [dict get $cfg pg_password]
	    }
	    set db [tdbc::postgres::connection new {*}$opts]
	}
	schema
	prepare
    } on error {msg} {
	disconnect
	set lastError "cannot open the [dict get $cfg database]\
		database: [string trim $msg]"
	error $lastError
    }
    set lastError ""
    return
}

# greydb::disconnect --
#	Forget the connection and its statements.

proc ::greydb::disconnect {} {
    variable db
    variable stmts
    dict for {name stmt} $stmts {
	catch {$stmt close}
    }
    set stmts {}
    if {$db ne ""} {
	catch {$db close}
	set db {}
    }
    return
}

# greydb::schema --
#	Create the tables if they are missing.  Several connections (the
#	workers of one milter, the milters of several hosts) may do this at
#	once on an empty PostgreSQL database, where two CREATE TABLE IF NOT
#	EXISTS of one table at the same moment make one of them fail: there
#	the creation holds an advisory lock.  (SQLite serialises it by
#	itself.)

proc ::greydb::schema {} {
    variable db
    variable cfg
    set pg [expr {[dict get $cfg database] eq "postgres"}]
    if {$pg} {
	$db allrows {SELECT pg_advisory_lock(74737371)}
    }
    try {
	ddl
    } finally {
	if {$pg} {
	    catch {$db allrows {SELECT pg_advisory_unlock(74737371)}}
	}
    }
}

proc ::greydb::ddl {} {
    variable db
    set ddl {
	{CREATE TABLE IF NOT EXISTS greylist_triplet (
	    net VARCHAR(64) NOT NULL,
	    sender VARCHAR(320) NOT NULL,
	    rcpt VARCHAR(320) NOT NULL,
	    first_seen BIGINT NOT NULL,
	    last_seen BIGINT NOT NULL,
	    passed INTEGER NOT NULL DEFAULT 0,
	    attempts INTEGER NOT NULL DEFAULT 1,
	    PRIMARY KEY (net, sender, rcpt))}
	{CREATE TABLE IF NOT EXISTS greylist_awl (
	    net VARCHAR(64) NOT NULL PRIMARY KEY,
	    passes INTEGER NOT NULL,
	    last_seen BIGINT NOT NULL)}
	{CREATE TABLE IF NOT EXISTS greylist_rate (
	    kind VARCHAR(16) NOT NULL,
	    rkey VARCHAR(320) NOT NULL,
	    start BIGINT NOT NULL,
	    hits INTEGER NOT NULL,
	    PRIMARY KEY (kind, rkey, start))}
	{CREATE INDEX IF NOT EXISTS greylist_triplet_seen
	    ON greylist_triplet (last_seen)}
    }
    foreach sql $ddl {
	$db allrows $sql
    }
    return
}

# greydb::prepare --
#	The statements of the operations, prepared once per connection.

proc ::greydb::prepare {} {
    variable db
    variable stmts
    foreach {name sql} {
	tripletInsert {INSERT INTO greylist_triplet
	    (net, sender, rcpt, first_seen, last_seen, passed, attempts)
	    VALUES (:net, :sender, :rcpt, :now, :now, 0, 1)
	    ON CONFLICT (net, sender, rcpt) DO NOTHING}
	tripletGet {SELECT first_seen, last_seen, passed
	    FROM greylist_triplet
	    WHERE net = :net AND sender = :sender AND rcpt = :rcpt}
	tripletSeen {UPDATE greylist_triplet
	    SET last_seen = :now, attempts = attempts + 1
	    WHERE net = :net AND sender = :sender AND rcpt = :rcpt}
	tripletPass {UPDATE greylist_triplet
	    SET last_seen = :now, passed = 1, attempts = attempts + 1
	    WHERE net = :net AND sender = :sender AND rcpt = :rcpt}
	tripletReset {UPDATE greylist_triplet
	    SET first_seen = :now, last_seen = :now, passed = 0,
		attempts = attempts + 1
	    WHERE net = :net AND sender = :sender AND rcpt = :rcpt}
	awlGet {SELECT passes, last_seen FROM greylist_awl WHERE net = :net}
	awlAdd {INSERT INTO greylist_awl (net, passes, last_seen)
	    VALUES (:net, 1, :now)
	    ON CONFLICT (net) DO UPDATE
	    SET passes = greylist_awl.passes + 1, last_seen = :now}
	awlTouch {UPDATE greylist_awl SET last_seen = :now
	    WHERE net = :net AND last_seen < :stale}
	rateGet {SELECT start, hits FROM greylist_rate
	    WHERE kind = :kind AND rkey = :rkey AND start >= :prev}
	rateAdd {INSERT INTO greylist_rate (kind, rkey, start, hits)
	    VALUES (:kind, :rkey, :cur, 1)
	    ON CONFLICT (kind, rkey, start) DO UPDATE
	    SET hits = greylist_rate.hits + 1}
	expireTriplets {DELETE FROM greylist_triplet
	    WHERE (passed = 0 AND first_seen < :windowcut)
	       OR (passed = 1 AND last_seen < :expirycut)}
	expireAwl {DELETE FROM greylist_awl WHERE last_seen < :expirycut}
	expireRate {DELETE FROM greylist_rate WHERE start < :ratecut}
	ping {SELECT COUNT(*) FROM greylist_awl WHERE 1 = 0}
    } {
	dict set stmts $name [$db prepare $sql]
    }
    return
}

# greydb::rows --
#	Run a prepared statement with the variables of the caller; the rows
#	as lists.

proc ::greydb::rows {name} {
    variable stmts
    return [uplevel 1 [list [dict get $stmts $name] allrows -as lists]]
}

# greydb::exec --
#	Run a prepared statement that changes rows; the number changed.

proc ::greydb::exec {name} {
    variable stmts
    set rs [uplevel 1 [list [dict get $stmts $name] execute]]
    try {
	return [$rs rowcount]
    } finally {
	$rs close
    }
}

namespace eval ::greydb::ops {
    namespace path ::greydb
}

# greydb::ops::rcpt --
#	The greylisting decision for one triplet at time now:
#	    verdict pass|greylist
#	    reason  new|early|expired (greylist), retried|known (pass)
#	    wait    ms until a retry passes (greylist)
#	    delayed ms the triplet waited before it passed (retried)
#	    awl     the client network's successful retries (retried)

proc ::greydb::ops::rcpt {net sender rcpt now delay window expiry} {
    if {[exec tripletInsert] > 0} {
	return [dict create verdict greylist reason new wait $delay]
    }
    set row [lindex [rows tripletGet] 0]
    if {![llength $row]} {
	# Deleted by an expiry run since the insert: a new one.
	exec tripletInsert
	return [dict create verdict greylist reason new wait $delay]
    }
    lassign $row first last passed
    set age [expr {$now - $first}]
    if {$passed} {
	if {$now - $last <= $expiry} {
	    exec tripletSeen
	    return [dict create verdict pass reason known delayed 0]
	}
    } elseif {$age < $delay} {
	exec tripletSeen
	return [dict create verdict greylist reason early \
		wait [expr {$delay - $age}]]
    } elseif {$age <= $window} {
	exec tripletPass
	exec awlAdd
	set passes [lindex [rows awlGet] 0 0]
	return [dict create verdict pass reason retried delayed $age \
		awl $passes]
    }
    # Passed long ago, or retried too late: start again.
    exec tripletReset
    return [dict create verdict greylist reason expired wait $delay]
}

# greydb::ops::envfrom --
#	The checks made once per message: is the client network
#	auto-whitelisted (awlCount successful retries, the last one within
#	expiry; 0 = no auto-whitelist), and is each rate limit kept.  rates
#	is a list of {kind key limit windowMs}; a message within every
#	limit is counted in each.  Returns a dict:
#	    awl     1 if auto-whitelisted
#	    passes  the network's successful retries
#	    over    {} or {kind key limit windowMs count} of the first limit
#		    exceeded (nothing is counted then)
#
#	The count over the sliding window that ends now is estimated from
#	two fixed windows of the same length (rows of greylist_rate): the
#	current one, and the previous one weighted by the part of it that
#	the sliding window still covers; rounded up, so that the estimate
#	errs towards the limit.  Two rows per key, whatever the traffic.

proc ::greydb::ops::envfrom {net now expiry awlCount rates} {
    set result [dict create awl 0 passes 0 over {}]
    if {$awlCount > 0 && $net ne ""} {
	set row [lindex [rows awlGet] 0]
	if {[llength $row]} {
	    lassign $row passes last
	    dict set result passes $passes
	    if {$passes >= $awlCount && $now - $last <= $expiry} {
		dict set result awl 1
		# Keep an active client listed; at most one write an hour.
		set stale [expr {$now - 3600000}]
		exec awlTouch
	    }
	}
    }
    set counted {}
    foreach r $rates {
	lassign $r kind rkey limit window
	set cur [expr {$now / $window * $window}]
	set prev [expr {$cur - $window}]
	set hits [dict create $cur 0 $prev 0]
	foreach row [rows rateGet] {
	    dict set hits {*}$row
	}
	set count [expr {int(ceil([dict get $hits $prev]
		* double($window - ($now - $cur)) / $window))
		+ [dict get $hits $cur]}]
	if {$count >= $limit} {
	    dict set result over [list $kind $rkey $limit $window $count]
	    return $result
	}
	lappend counted $kind $rkey $cur
    }
    foreach {kind rkey cur} $counted {
	exec rateAdd
    }
    return $result
}

# greydb::ops::maintain --
#	Delete what has expired: triplets never retried within the retry
#	window, passed triplets and auto-whitelist entries not seen within
#	the expiry, rate-limit windows that ended before the longest window.

proc ::greydb::ops::maintain {now window expiry rateWindow} {
    set windowcut [expr {$now - $window}]
    set expirycut [expr {$now - $expiry}]
    set ratecut [expr {$now - 2 * $rateWindow}]
    return [dict create triplets [exec expireTriplets] \
	    awl [exec expireAwl] rate [exec expireRate]]
}

# greydb::ops::ping --
#	Is the database there?

proc ::greydb::ops::ping {} {
    rows ping
    return [dict create ok 1]
}
