# installed.tcl --
#
#	Tests of the installed Debian package tcl-tclmilter, run by
#	tests/package/run.sh after it has built and installed the package:
#
#	    env -u TCLLIBPATH /usr/bin/tclsh tests/package/installed.tcl
#
#	Nothing here loads TclMilter from the source or build tree: this
#	tclsh and every filter it starts run without TCLLIBPATH, from "/",
#	so "package require TclMilter" can only find the installed copy (test
#	package-1.1 and package-2.1 check which file was loaded).  The source
#	tree provides only the MTA harness (tests/mta/) and README.md, whose
#	snippets the tests run as they are written there:
#
#	    package-1.*	the files of the package, its manual pages, its
#			examples and systemd units
#	    package-2.*	examples/blacklist.tcl as installed, set up as
#			README.md says (setup commands, the unit's user,
#			group and command line, the main.cf settings)
#			behind a private real Postfix
#	    package-3.*	the same behind a private real Sendmail, with
#			README.md's INPUT_MAIL_FILTER line
#
#	The script exits with status 1 when a test failed or was skipped, so
#	that CI notices a missing MTA.  Needs root, the package installed,
#	and "bash scripts/deps.sh deb".
#
# Copyright (c) 2026 The TclMilter developers.
# See the file "license.terms" for information on usage and redistribution.

package require Tcl 8.6
package require tcltest 2.5
namespace import ::tcltest::*
configure {*}$argv

namespace eval ::pkgtest {
    variable here [file dirname [file normalize [info script]]]
    variable top [file dirname [file dirname $here]]
    variable package tcl-tclmilter
    variable version 1.1
    variable docdir /usr/share/doc/tcl-tclmilter
    variable tclsh /usr/bin/tclsh
    variable multiarch ""
    variable pkgdir ""
    variable filters {}		;# name -> pid of a running filter
    variable map {}		;# README path -> test path
    # README.md's section with the setup commands and the Postfix unit.
    variable unitSection "The socket, its group, and a systemd unit"
}

if {[info exists ::env(TCLLIBPATH)]} {
    puts stderr "installed.tcl: unset TCLLIBPATH (tests/package/run.sh does)"
    exit 2
}
if {$::pkgtest::top in $::auto_path} {
    puts stderr "installed.tcl: the source tree is on auto_path"
    exit 2
}

# The test helpers, without the source tree on auto_path or TCLLIBPATH
# (see harness/base.tcl).
namespace eval ::tm {variable installed 1}
source [file join $::pkgtest::top tests harness.tcl]

catch {
    set ::pkgtest::multiarch [exec dpkg-architecture -qDEB_HOST_MULTIARCH \
	    2>/dev/null]
}
set ::pkgtest::pkgdir \
	/usr/lib/tcltk/$::pkgtest::multiarch/TclMilter$::pkgtest::version

testConstraint installed [expr {$::pkgtest::multiarch ne ""
	&& ![catch {exec dpkg-query -W -f {${db:Status-Status}} \
	$::pkgtest::package} status] && $status eq "installed"}]
testConstraint systemdAnalyze [expr {[auto_execok systemd-analyze] ne ""}]
foreach mta {postfix sendmail} {
    set why [::tm::${mta}::missing]
    if {[auto_execok setpriv] eq ""} {
	lappend why "setpriv not found (util-linux)"
    }
    if {[llength $why]} {
	puts [outputChannel] "installed.tcl: no $mta tests: [join $why {; }]"
    }
    testConstraint $mta [expr {[testConstraint installed] && ![llength $why]}]
}

# ---------------------------------------------------------------------
# README.md
# ---------------------------------------------------------------------

# pkgtest::readmeBlocks --
#
#	The code blocks (indented by four spaces) of the README.md section
#	whose heading is "### heading", in order.
#
# Results:
#	A list of texts, one per block, without the indentation.

proc ::pkgtest::readmeBlocks {heading} {
    variable top
    set f [open [file join $top README.md]]
    fconfigure $f -encoding utf-8
    set lines [split [read $f] \n]
    close $f
    set in 0
    set blocks {}
    set block {}
    foreach line [concat $lines [list "# end"]] {
	if {[string match "    *" $line] && $in} {
	    lappend block [string range $line 4 end]
	    continue
	}
	if {$line eq "" && [llength $block]} {
	    # A blank line inside a block, or the one that ends it.
	    lappend block ""
	    continue
	}
	if {[llength $block]} {
	    lappend blocks [string trimright [join $block \n]]
	    set block {}
	}
	if {[regexp {^#+ } $line]} {
	    set in [expr {$line eq "### $heading"}]
	}
    }
    if {![llength $blocks]} {
	error "README.md has no code block under \"### $heading\""
    }
    return $blocks
}

# pkgtest::unit --
#
#	A systemd unit of README.md: the code block number index of the
#	section heading.
#
# Results:
#	A dict: text (the unit file), and each key of its [Service] section
#	(User, ExecStart, ...) with its value.  Group, when the unit has
#	none, is the primary group of User (of nobody for tclmilter), as
#	systemd does.

proc ::pkgtest::unit {heading index} {
    set text [lindex [readmeBlocks $heading] $index]
    set unit [dict create text $text]
    set section ""
    foreach line [split $text \n] {
	if {[regexp {^\[(.*)\]$} $line -> section]} {
	    continue
	}
	if {$section eq "Service" && [regexp {^(\w+)=(.*)$} $line -> k v]} {
	    dict set unit $k $v
	}
    }
    if {![dict exists $unit ExecStart] || ![dict exists $unit User]} {
	error "README.md: no ExecStart= or User= in the unit:\n$text"
    }
    if {[dict get $unit User] eq "tclmilter"} {
	dict set unit User nobody
    }
    if {![dict exists $unit Group]} {
	dict set unit Group [exec id -gn [dict get $unit User]]
    }
    return $unit
}

# pkgtest::mapPath --
#
#	A word of README.md with its system paths moved to the test's
#	temporary directories (::pkgtest::map), keeping a "unix:" or
#	"local:" prefix.
#
# Results:
#	The word, changed or not.

proc ::pkgtest::mapPath {word} {
    variable map
    regexp {^((?:unix:|local:)?)(.*)$} $word -> prefix path
    foreach {from to} $map {
	if {$path eq $from || [string match $from/* $path]} {
	    return $prefix$to[string range $path [string length $from] end]
	}
    }
    return $word
}

# pkgtest::setup --
#
#	Runs README.md's setup commands with the paths mapped, except
#	adduser (the user tclmilter is played by nobody) and those that
#	match the glob pattern skip.
#
# Results:
#	None.
#
# Side effects:
#	Creates the socket directory and the copy of the example.

proc ::pkgtest::setup {{skip ""}} {
    variable unitSection
    set block [lindex [readmeBlocks $unitSection] 0]
    foreach line [split $block \n] {
	if {$skip ne "" && [string match $skip $line]} {
	    continue
	}
	set words [lmap w $line {mapPath $w}]
	switch -- [lindex $words 0] {
	    adduser {
		if {[lindex $words end] ne "tclmilter"} {
		    error "unexpected setup command: $line"
		}
	    }
	    install {
		set words [lmap w $words {
		    if {$w eq "tclmilter"} {
			set w nobody
		    }
		    set w
		}]
		exec {*}$words
	    }
	    default {
		error "unexpected setup command: $line"
	    }
	}
    }
}

# pkgtest::startFilter --
#
#	Starts the ExecStart command of a unit (see unit), paths mapped, as
#	the unit's user and group, without TCLLIBPATH, from "/", and waits
#	until its socket is in place.
#
# Results:
#	The socket path.
#
# Side effects:
#	Records the unit and the pid in ::pkgtest::filters(name); writes
#	the filter's output to DIR/name.out.

proc ::pkgtest::startFilter {name dir unit} {
    variable filters
    set cmd [lmap w [dict get $unit ExecStart] {mapPath $w}]
    regexp {^(?:unix:|local:)(.*)$} [lindex $cmd end] -> path
    # A socket left behind by a killed filter is there already; the new
    # one is a new file.  A second link keeps the old inode in use while
    # the filter starts, so that the new file cannot get its number.
    set stale ""
    if {[file exists $path]} {
	set stale [inode $path]
	file link -hard $path.stale $path
    }
    set pid [::tm::background $dir/$name.out env -C / setpriv \
	    --reuid=[dict get $unit User] --regid=[dict get $unit Group] \
	    --clear-groups {*}$cmd]
    dict set filters $name $pid
    if {![::tm::waitUntil {
	    ([file exists $path] && [file type $path] eq "socket"
	     && [::pkgtest::inode $path] ne $stale)
	    || ![::tm::alive $pid]} 15000] || ![::tm::alive $pid]} {
	catch {file delete $path.stale}
	error "the filter did not start: [::tm::readFile $dir/$name.out]"
    }
    catch {file delete $path.stale}
    return $path
}

# pkgtest::inode, pkgtest::mode --
#
#	A file's inode number, and its permission bits in octal (0660).

proc ::pkgtest::inode {path} {
    file lstat $path st
    return $st(ino)
}

proc ::pkgtest::mode {path} {
    file lstat $path st
    return [format %04o [expr {$st(mode) & 07777}]]
}

# pkgtest::stopFilter --
#
#	Stops a filter started by startFilter (SIGTERM).
#
# Results:
#	None.

proc ::pkgtest::stopFilter {name} {
    variable filters
    ::tm::kill [dict get $filters $name]
    dict unset filters $name
}

# pkgtest::killFilter --
#
#	Kills a filter started by startFilter with SIGKILL, as a crash
#	would: its socket file stays behind.
#
# Results:
#	None.

proc ::pkgtest::killFilter {name} {
    variable filters
    set pid [dict get $filters $name]
    catch {exec kill -KILL $pid}
    ::tm::kill $pid
    dict unset filters $name
}

# pkgtest::output --
#
#	The lines a filter has written so far.

proc ::pkgtest::output {dir name} {
    return [split [string trim [::tm::readFile $dir/$name.out auto]] \n]
}

# pkgtest::last --
#
#	The last SMTP reply of a session.

proc ::pkgtest::last {r} {
    return [lindex [::tm::mta::replies $r] end]
}

# pkgtest::procIds --
#
#	The real user and group of a process, as names.

proc ::pkgtest::procIds {pid} {
    set status [::tm::readFile /proc/$pid/status auto]
    regexp -line {^Uid:\s+(\d+)} $status -> uid
    regexp -line {^Gid:\s+(\d+)} $status -> gid
    return [list [exec id -nu $uid] [lindex [split \
	    [exec getent group $gid] :] 0]]
}

# pkgtest::loadsInstalled --
#
#	Whether a process has the installed shared library mapped and no
#	other copy of libtclmilter.

proc ::pkgtest::loadsInstalled {pid} {
    variable pkgdir
    variable version
    set files {}
    foreach line [split [::tm::readFile /proc/$pid/maps auto] \n] {
	set file [lindex $line end]
	if {[string match */libtclmilter* $file] && $file ni $files} {
	    lappend files $file
	}
    }
    return [expr {$files eq [list $pkgdir/libtclmilter$version.so]}]
}

set ::pkgtest::clean [::tm::smtp::message -from sender@client.tclmilter.test]

try {

# ---------------------------------------------------------------------
# The package's files
# ---------------------------------------------------------------------

test package-1.1 {Debian's tclsh finds the installed package by itself} -constraints {
    installed
} -body {
    set script {
	puts [package require TclMilter]
	foreach pair [info loaded] {
	    if {[lindex $pair 1] eq "Milter"} {
		puts [lindex $pair 0]
	    }
	}
	puts [package require milter::test]
	# Its scripts' directory, and the unix-socket connector that its
	# init procedure in the same library makes.
	puts [lindex [package ifneeded milter::test [package present \
		milter::test]] end]
	puts [info commands ::milter::test::unixsocket]
    }
    split [string trim [exec env -u TCLLIBPATH -C / $::pkgtest::tclsh \
	    << $script 2>@1]] \n
} -result [list 1.1 $::pkgtest::pkgdir/libtclmilter1.1.so 1.0 \
	$::pkgtest::pkgdir ::milter::test::unixsocket]

test package-1.2 {every library script, manual page and example is installed} -constraints {
    installed
} -body {
    set top $::pkgtest::top
    set want [list $::pkgtest::pkgdir/libtclmilter1.1.so \
	    $::pkgtest::pkgdir/pkgIndex.tcl \
	    $::pkgtest::docdir/copyright]
    foreach f [glob -directory $top/library *.tcl] {
	lappend want $::pkgtest::pkgdir/[file tail $f]
    }
    foreach f [glob -directory $top/doc *.n] {
	lappend want /usr/share/man/man3/[file rootname [file tail $f]].3tcl.gz
    }
    foreach f [glob -directory $top/examples *] {
	lappend want $::pkgtest::docdir/examples/[file tail $f]
    }
    set have [split [exec dpkg -L $::pkgtest::package] \n]
    set missing [lmap f $want {expr {$f in $have ? [continue] : $f}}]
    set outside [lmap f $have {
	expr {[file isdirectory $f]
	    || [string match $::pkgtest::pkgdir/* $f]
	    || [string match $::pkgtest::docdir/* $f]
	    || [string match /usr/share/man/man3/*.3tcl.gz $f]
	    ? [continue] : $f}
    }]
    list $missing $outside
} -result {{} {}}

# pkgtest::exampleFiles dir --
#	Every file under dir (examples/greylist/ is a directory), as paths
#	relative to dir, sorted.

proc ::pkgtest::exampleFiles {dir {prefix {}}} {
    set files {}
    foreach f [lsort [glob -nocomplain -directory $dir *]] {
	set name [file join {*}$prefix [file tail $f]]
	if {[file isdirectory $f]} {
	    lappend files {*}[exampleFiles $f [list {*}$prefix [file tail $f]]]
	} else {
	    lappend files $name
	}
    }
    return $files
}

test package-1.3 {the installed examples are the source tree's, unchanged} -constraints {
    installed
} -body {
    lmap name [::pkgtest::exampleFiles $::pkgtest::top/examples] {
	set copy [file join $::pkgtest::docdir examples $name]
	expr {[file isfile $copy] && [::tm::readFile $copy]
	    eq [::tm::readFile [file join $::pkgtest::top examples $name]]
	    ? [continue] : $name}
    }
} -result {}

test package-1.4 {manual pages in section 3tcl} -constraints {
    installed
} -body {
    lmap page {tclmilter miltertest} {
	set file [exec man -w 3tcl $page]
	list $file [lrange [lsearch -inline -regexp [split [exec zcat $file] \n] \
		{^\.TH }] 0 2]
    }
} -result [list \
	{/usr/share/man/man3/tclmilter.3tcl.gz {.TH TclMilter 3tcl}} \
	{/usr/share/man/man3/miltertest.3tcl.gz {.TH milter::test 3tcl}}]

test package-1.5 {installed example units pass systemd-analyze verify and name installed files} -constraints {
    installed systemdAnalyze
} -body {
    set units [lsort [glob -nocomplain -directory $::pkgtest::docdir/examples \
	    *.service *.socket]]
    set out {}
    foreach unit $units {
	if {[catch {exec systemd-analyze verify --man=no $unit 2>@1} msg]} {
	    lappend out "[file tail $unit]: $msg"
	}
	foreach line [split [::tm::readFile $unit auto] \n] {
	    if {![regexp {^Exec\w*=[-+!@:]*(.*)$} $line -> cmd]} {
		continue
	    }
	    foreach word $cmd {
		if {[string match /usr/share/doc/* $word]
			&& ![file exists $word]} {
		    lappend out "[file tail $unit]: $word does not exist"
		}
	    }
	}
    }
    list [lmap unit $units {file tail $unit}] $out
} -result [list [lmap f [lsort [glob -nocomplain -directory \
	$::pkgtest::top/examples *.service *.socket]] {file tail $f}] {}]

test package-1.6 {README.md's units pass systemd-analyze verify} -constraints {
    installed systemdAnalyze
} -setup {
    set dir [::tm::tempdir -unit]
} -body {
    set out {}
    foreach {heading index} [list $::pkgtest::unitSection 1 Sendmail 0] {
	::tm::writeFile $dir/blacklist-milter.service \
		"[dict get [::pkgtest::unit $heading $index] text]\n"
	lappend out [exec systemd-analyze verify --man=no \
		$dir/blacklist-milter.service 2>@1]
    }
    set out
} -result {{} {}}

# ---------------------------------------------------------------------
# The installed blacklist example behind Postfix, set up as README.md says
# ---------------------------------------------------------------------

if {[testConstraint postfix]} {
    set params {}
    foreach line [split [lindex [::pkgtest::readmeBlocks Postfix] 0] \n] {
	if {![regexp {^(\w+) = (.*)$} $line -> name value]} {
	    error "README.md: not a main.cf line: $line"
	}
	dict set params $name $value
    }
    set ::pkgtest::pf [::tm::postfix::start -params $params]
    set ::pkgtest::pfdir [::tm::tempdir -pkg]
    set ::pkgtest::map [list /var/spool/postfix \
	    [dict get $::pkgtest::pf spool] \
	    /usr/local/lib/tclmilter $::pkgtest::pfdir/lib]
    ::pkgtest::setup
    set ::pkgtest::pfunit [::pkgtest::unit $::pkgtest::unitSection 1]
    set ::pkgtest::pfsock [::pkgtest::startFilter postfix $::pkgtest::pfdir \
	    $::pkgtest::pfunit]
}

test package-2.1 {the socket, its directory, the filter's user and library} -constraints {
    postfix
} -body {
    set sock $::pkgtest::pfsock
    set sockdir [file dirname $sock]
    set pid [dict get $::pkgtest::filters postfix]
    list [::pkgtest::mode $sock] \
	    [file attributes $sock -owner] [file attributes $sock -group] \
	    [::pkgtest::mode $sockdir] \
	    [file attributes $sockdir -owner] \
	    [file attributes $sockdir -group] \
	    [::pkgtest::procIds $pid] [::pkgtest::loadsInstalled $pid]
} -result {0660 nobody postfix 0750 nobody postfix {nobody postfix} 1}

test package-2.2 {a clean message passes} -constraints {
    postfix
} -body {
    set msg [::tm::postfix::deliver1 -message $::pkgtest::clean -result r]
    list [::pkgtest::last $r] [::tm::sink::fields $msg]
} -match glob -result {{{250 2.0.0 Ok: queued as *}} {{From: <sender@client.tclmilter.test>} {To: <rcpt@dest.tclmilter.test>} {Subject: test message}}}

test package-2.3 {a blacklisted sender is refused at MAIL} -constraints {
    postfix
} -body {
    set r [::tm::postfix::send -from <Spammer@SpamDomain.com>]
    list [dict get $r mail] \
	    [lindex [::pkgtest::output $::pkgtest::pfdir postfix] end]
} -result {{{550 5.7.1 Mail from <spammer@spamdomain.com> is not accepted here}} {Blacklist: rejected sender <spammer@spamdomain.com>}}

test package-2.4 {a blacklisted From: header is refused at the end of DATA} -constraints {
    postfix
} -body {
    set r [::tm::postfix::send -message [::tm::smtp::message \
	    -from friend@public.com]]
    list [::pkgtest::last $r] \
	    [lindex [::pkgtest::output $::pkgtest::pfdir postfix] end]
} -result {{{550 5.7.1 Mail from <friend@public.com> is not accepted here}} {Blacklist: rejected From: header <friend@public.com>}}

test package-2.5 {filter down: milter_default_action tempfail} -constraints {
    postfix
} -body {
    ::pkgtest::killFilter postfix
    list [file type $::pkgtest::pfsock] \
	    [::pkgtest::last [::tm::postfix::send -message $::pkgtest::clean]]
} -result {socket {{451 4.7.1 Service unavailable - try again later}}}

test package-2.6 {restarted after a kill, the filter replaces its stale socket and serves} -constraints {
    postfix
} -body {
    ::pkgtest::startFilter postfix $::pkgtest::pfdir $::pkgtest::pfunit
    set r [::tm::postfix::send -from <spammer@spamdomain.com>]
    ::tm::postfix::deliver1 -message $::pkgtest::clean -result ok
    list [dict get $r mail] [::pkgtest::last $ok]
} -match glob -result {{{550 5.7.1 Mail from <spammer@spamdomain.com> is not accepted here}} {{250 2.0.0 Ok: queued as *}}}

if {[testConstraint postfix]} {
    ::pkgtest::stopFilter postfix
    ::tm::postfix::stop
}

# ---------------------------------------------------------------------
# The same behind Sendmail, with README.md's INPUT_MAIL_FILTER line and
# the socket in the unit's RuntimeDirectory
# ---------------------------------------------------------------------

if {[testConstraint sendmail]} {
    set ::pkgtest::smunit [::pkgtest::unit Sendmail 0]
    set mcline [lindex [::pkgtest::readmeBlocks Sendmail] 1]
    if {![regexp {^INPUT_MAIL_FILTER\(`([^']+)', `([^']+)'\)dnl$} $mcline \
	    -> ::pkgtest::smname equates]
	    || ![regexp {(?:^|, )S=local:([^,]+)} $equates -> path]} {
	error "README.md: unexpected Sendmail line: $mcline"
    }
    if {"unix:$path" ne [lindex [dict get $::pkgtest::smunit ExecStart] end]} {
	error "README.md: the Sendmail unit and filter line name different\
		sockets"
    }
    set ::pkgtest::smdir [::tm::tempdir -pkg]
    set ::pkgtest::map [list /run $::pkgtest::smdir/run \
	    /usr/local/lib/tclmilter $::pkgtest::smdir/lib]
    ::pkgtest::setup "install -d *"
    # What systemd does for RuntimeDirectory=: the directory in /run,
    # owned by the unit's user and group, with RuntimeDirectoryMode.
    set run [::pkgtest::mapPath \
	    /run/[dict get $::pkgtest::smunit RuntimeDirectory]]
    file mkdir $run
    file attributes $run -owner [dict get $::pkgtest::smunit User] \
	    -group [dict get $::pkgtest::smunit Group] \
	    -permissions [dict get $::pkgtest::smunit RuntimeDirectoryMode]
    set ::pkgtest::smsock [::pkgtest::startFilter sendmail $::pkgtest::smdir \
	    $::pkgtest::smunit]
    ::tm::sendmail::start -listeners [list $::pkgtest::smname [list \
	    filter [string map [list $path [::pkgtest::mapPath $path]] \
	    $equates]]]
}

test package-3.1 {the socket in the unit's RuntimeDirectory} -constraints {
    sendmail
} -body {
    set sock $::pkgtest::smsock
    set sockdir [file dirname $sock]
    list [::pkgtest::mode $sock] \
	    [file attributes $sock -owner] [file attributes $sock -group] \
	    [::pkgtest::mode $sockdir] \
	    [file attributes $sockdir -owner] \
	    [file attributes $sockdir -group] \
	    [::pkgtest::loadsInstalled [dict get $::pkgtest::filters sendmail]]
} -result {0660 nobody nogroup 0750 nobody nogroup 1}

test package-3.2 {a clean message passes} -constraints {
    sendmail
} -body {
    set r [::tm::sendmail::send -listener $::pkgtest::smname \
	    -message $::pkgtest::clean]
    set msgs [::tm::sendmail::delivered [dict get $r queueid]]
    list [::pkgtest::last $r] [llength $msgs] \
	    [::tm::sink::header [lindex $msgs 0] Subject]
} -match glob -result {{{250 2.0.0 * Message accepted for delivery}} 1 {{test message}}}

test package-3.3 {a blacklisted sender is refused at MAIL} -constraints {
    sendmail
} -body {
    set r [::tm::sendmail::send -listener $::pkgtest::smname \
	    -from <spammer@spamdomain.com>]
    list [dict get $r mail] \
	    [lindex [::pkgtest::output $::pkgtest::smdir sendmail] end]
} -result {{{550 5.7.1 <spammer@spamdomain.com>... Mail from <spammer@spamdomain.com> is not accepted here}} {Blacklist: rejected sender <spammer@spamdomain.com>}}

test package-3.4 {filter down: F=T defers the mail} -constraints {
    sendmail
} -body {
    ::pkgtest::stopFilter sendmail
    ::pkgtest::last [::tm::sendmail::send -listener $::pkgtest::smname \
	    -message $::pkgtest::clean]
} -result {{451 4.3.2 Please try again later}}

} finally {
    foreach pid [dict values $::pkgtest::filters] {
	::tm::kill $pid
    }
    ::tm::finish
}

# Failures and tests skipped for a constraint (not for -match or -skip)
# both fail the run: CI must run every test.
set ::pkgtest::skipped 0
foreach {reason n} [array get ::tcltest::skippedBecause] {
    if {![string match userSpecified* $reason]} {
	incr ::pkgtest::skipped $n
    }
}
set ::pkgtest::status [expr {$::tcltest::numTests(Failed) > 0
	|| $::pkgtest::skipped > 0
	|| $::tcltest::numTests(Passed) == 0}]
cleanupTests
exit $::pkgtest::status
