-- eom.lua: end-of-message modifications, checked with mt.eom_check.
-- Run as: miltertest -D sock=SPEC -D dir=tests/lua -s eom.lua

dofile(dir .. "/common.lua")

-- One message; X-Milter-Do says what everything.tcl does at EOM.
function message(conn, todo, body)
    check(mt.mailfrom(conn, "<sender@x.test>") == nil, "mail")
    check(mt.rcptto(conn, "<a@x.test>") == nil, "rcpt a")
    check(mt.rcptto(conn, "<b@x.test>") == nil, "rcpt b")
    check(mt.header(conn, "Subject", "old subject") == nil, "header Subject")
    check(mt.header(conn, "X-Old", "old") == nil, "header X-Old")
    check(mt.header(conn, "X-Milter-Do", todo) == nil, "header X-Milter-Do")
    check(mt.eoh(conn) == nil, "eoh")
    check(mt.bodystring(conn, body) == nil, "body")
    check(mt.eom(conn) == nil, "eom")
    reply(conn, SMFIR_CONTINUE, "eom-reply")
end

conn = open("127.0.0.1", "")
check(mt.helo(conn, "client.test") == nil, "helo")

message(conn, "addheader X-A 1; chgheader Subject 1 {new subject}; " ..
        "delheader X-Old 1; insheader 0 X-Top t; " ..
        "addrcpt <c@x.test>; delrcpt <b@x.test>; " ..
        "replacebody text {new body}; quarantine {held for review}",
        "old body\r\n")
check(mt.eom_check(conn, MT_HDRADD, "X-A", "1"), "MT_HDRADD")
check(mt.getheader(conn, "X-A", 0) == "1", "getheader X-A")
check(mt.eom_check(conn, MT_HDRCHANGE, "Subject", "new subject"),
      "MT_HDRCHANGE")
check(mt.eom_check(conn, MT_HDRDELETE, "X-Old"), "MT_HDRDELETE")
check(mt.eom_check(conn, MT_HDRINSERT, "X-Top", "t", 0), "MT_HDRINSERT")
check(mt.eom_check(conn, MT_RCPTADD, "<c@x.test>"), "MT_RCPTADD")
check(mt.eom_check(conn, MT_RCPTDELETE, "<b@x.test>"), "MT_RCPTDELETE")
check(mt.eom_check(conn, MT_BODYCHANGE, "new body\r\n"), "MT_BODYCHANGE")
check(mt.eom_check(conn, MT_QUARANTINE, "held for review"), "MT_QUARANTINE")

-- A second message on the same connection: nothing carried over.
message(conn, "addheader X-Second yes", "second\r\n")
check(mt.eom_check(conn, MT_HDRADD, "X-Second", "yes"), "second-MT_HDRADD")
check(not mt.eom_check(conn, MT_HDRADD, "X-A"), "second-no-X-A")
check(not mt.eom_check(conn, MT_BODYCHANGE), "second-no-MT_BODYCHANGE")
check(not mt.eom_check(conn, MT_QUARANTINE), "second-no-MT_QUARANTINE")

-- (No large replacement body here: miltertest 2.11 overflows a stack
-- buffer ("stack smashing detected") on a REPLBODY of a few KiB.  The
-- Postfix and Sendmail tests check multi-packet replacement bodies.)

-- A transaction cut short by ABORT; then QUIT.
check(mt.mailfrom(conn, "<sender@x.test>") == nil, "mail-before-abort")
check(mt.rcptto(conn, "<a@x.test>") == nil, "rcpt-before-abort")
check(mt.abort(conn) == nil, "abort")
mt.disconnect(conn)
