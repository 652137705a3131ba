-- replies.lua: end-of-message verdicts and setreply, as mt.getreply and
-- MT_SMTPREPLY see them.
-- Run as: miltertest -D sock=SPEC -D dir=tests/lua -s replies.lua

dofile(dir .. "/common.lua")

function eom(conn, todo, want, name)
    check(mt.mailfrom(conn, "<sender@x.test>") == nil, name .. "-mail")
    check(mt.rcptto(conn, "<rcpt@x.test>") == nil, name .. "-rcpt")
    check(mt.header(conn, "X-Milter-Do", todo) == nil, name .. "-header")
    check(mt.eom(conn) == nil, name .. "-eom")
    reply(conn, want, name)
end

conn = open("127.0.0.1", "")

eom(conn, "return SMFIS_CONTINUE", SMFIR_CONTINUE, "continue")
eom(conn, "return SMFIS_ACCEPT", SMFIR_ACCEPT, "accept")
eom(conn, "return SMFIS_REJECT", SMFIR_REJECT, "reject")
eom(conn, "return SMFIS_TEMPFAIL", SMFIR_TEMPFAIL, "tempfail")
eom(conn, "return SMFIS_DISCARD", SMFIR_DISCARD, "discard")

eom(conn, "setreply 554 5.7.0 {custom reject}; return SMFIS_REJECT",
    SMFIR_REPLYCODE, "reject-custom")
check(mt.eom_check(conn, MT_SMTPREPLY, "554", "5.7.0", "custom reject"),
      "MT_SMTPREPLY-reject")

eom(conn, "setreply 452 4.3.1 {try later}; return SMFIS_TEMPFAIL",
    SMFIR_REPLYCODE, "tempfail-custom")
check(mt.eom_check(conn, MT_SMTPREPLY, "452", "4.3.1", "try later"),
      "MT_SMTPREPLY-tempfail")

-- A reply whose class does not match the verdict is not used.
eom(conn, "setreply 554 5.7.0 {wrong class}; return SMFIS_TEMPFAIL",
    SMFIR_TEMPFAIL, "tempfail-with-5xx-reply")

-- A callback error: the -defaultreply (SMFIS_TEMPFAIL).
eom(conn, "no-such-command", SMFIR_TEMPFAIL, "callback-error")
mt.disconnect(conn)
