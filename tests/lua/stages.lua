-- stages.lua: verdicts before end of message (everything.tcl's fixed
-- rules), each as mt.getreply sees it.
-- Run as: miltertest -D sock=SPEC -D dir=tests/lua -s stages.lua (milter started with
-- -rejectconnect 127.0.0.2 -tempfailconnect 127.0.0.3).

dofile(dir .. "/common.lua")

-- A connection from addr (the check names end in -ADDR).
function from(addr)
    return open(addr, "-" .. addr)
end

-- CONNECT
conn = from("127.0.0.2")
reply(conn, SMFIR_REPLYCODE, "connect-reject")
mt.disconnect(conn)
conn = from("127.0.0.3")
reply(conn, SMFIR_TEMPFAIL, "connect-tempfail")
mt.disconnect(conn)

-- HELO
conn = from("127.0.0.1")
reply(conn, SMFIR_CONTINUE, "connect-continue")
check(mt.helo(conn, "reject.helo.test") == nil, "helo-sent")
reply(conn, SMFIR_REPLYCODE, "helo-reject")
mt.disconnect(conn)
conn = from("127.0.0.1")
check(mt.helo(conn, "tempfail.helo.test") == nil, "helo-sent-2")
reply(conn, SMFIR_TEMPFAIL, "helo-tempfail")
mt.disconnect(conn)

-- MAIL: each verdict ends the transaction; the next MAIL starts anew.
conn = from("127.0.0.1")
check(mt.helo(conn, "client.test") == nil, "helo")
reply(conn, SMFIR_CONTINUE, "helo-continue")
for _, v in ipairs({{"<reject-mail@x.test>", SMFIR_REPLYCODE},
                    {"<tempfail-mail@x.test>", SMFIR_REPLYCODE},
                    {"<discard-mail@x.test>", SMFIR_DISCARD},
                    {"<accept-mail@x.test>", SMFIR_ACCEPT},
                    {"<sender@x.test>", SMFIR_CONTINUE}}) do
    check(mt.mailfrom(conn, v[1]) == nil, "mail-sent " .. v[1])
    reply(conn, v[2], "mail " .. v[1])
end

-- RCPT: a verdict affects one recipient.
for _, v in ipairs({{"<reject-rcpt@x.test>", SMFIR_REPLYCODE},
                    {"<tempfail-rcpt@x.test>", SMFIR_TEMPFAIL},
                    {"<multiline-rcpt@x.test>", SMFIR_REPLYCODE},
                    {"<ok@x.test>", SMFIR_CONTINUE}}) do
    check(mt.rcptto(conn, v[1], "NOTIFY=NEVER") == nil, "rcpt-sent " .. v[1])
    reply(conn, v[2], "rcpt " .. v[1])
end

-- Headers get no reply (SMFIP_NR_HDR); SKIP from the body callback.
check(mt.header(conn, "Subject", "stages") == nil, "header")
check(mt.header(conn, "X-Milter-Do", "skipbody; addheader X-Skipped yes") == nil,
      "header-do")
check(mt.eoh(conn) == nil, "eoh")
check(mt.bodystring(conn, "first chunk\r\n") == nil, "body")
reply(conn, SMFIR_SKIP, "body-skip")
check(mt.eom(conn) == nil, "eom")
reply(conn, SMFIR_CONTINUE, "eom-continue")
check(mt.eom_check(conn, MT_HDRADD, "X-Skipped", "yes"), "eom-after-skip")

-- UNKNOWN
check(mt.unknown(conn, "FOOBAR some args") == nil, "unknown-sent")
reply(conn, SMFIR_REPLYCODE, "unknown-reject")
mt.disconnect(conn)
