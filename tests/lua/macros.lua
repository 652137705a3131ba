-- macros.lua: macros sent with mt.macro reach getsymval, stage by stage.
-- Run as: miltertest -D sock=SPEC -D dir=tests/lua -s macros.lua
-- everything.tcl's "macros" command adds X-Macros-STAGE headers whose
-- values are Tcl dicts of the macros it looked up at that stage.

dofile(dir .. "/common.lua")

conn = connect("")
mt.macro(conn, SMFIC_CONNECT, "j", "mta.test", "{daemon_name}", "lua-mta",
         "_", "client.test [127.0.0.1]")
check(mt.conninfo(conn, "client.test", "127.0.0.1") == nil, "conninfo")
mt.macro(conn, SMFIC_HELO, "{tls_version}", "TLSv1.3", "{cipher}", "X")
check(mt.helo(conn, "client.test") == nil, "helo")
mt.macro(conn, SMFIC_MAIL, "i", "QID1", "{mail_addr}", "sender@x.test",
         "{mail_mailer}", "esmtp")
check(mt.mailfrom(conn, "<sender@x.test>") == nil, "mail")
mt.macro(conn, SMFIC_RCPT, "{rcpt_addr}", "rcpt@x.test", "{rcpt_mailer}",
         "local")
check(mt.rcptto(conn, "<rcpt@x.test>") == nil, "rcpt")
check(mt.header(conn, "X-Milter-Do", "macros") == nil, "header")
check(mt.eom(conn) == nil, "eom")
reply(conn, SMFIR_CONTINUE, "eom-reply")

function header(name, want)
    same(mt.getheader(conn, name, 0), want, name)
end

header("X-Macros-Connect", "j mta.test _ {client.test [127.0.0.1]} v {} " ..
       "{{daemon_name}} lua-mta {{daemon_addr}} {} {{daemon_port}} {} " ..
       "{{client_addr}} {} {{client_port}} {} {{client_name}} {} " ..
       "{{client_ptr}} {} {{if_name}} {} {{if_addr}} {}")
header("X-Macros-Helo", "{{tls_version}} TLSv1.3 {{cipher}} X " ..
       "{{cipher_bits}} {} {{cert_subject}} {} {{cert_issuer}} {} " ..
       "{{client_addr}} {}")
header("X-Macros-Envfrom", "i QID1 {{mail_addr}} sender@x.test " ..
       "{{mail_host}} {} {{mail_mailer}} esmtp {{auth_type}} {} " ..
       "{{auth_authen}} {} {{auth_author}} {}")
-- RCPT-stage macros, and the MAIL-stage i still visible there.
header("X-Macros-Envrcpt", "i QID1 {{rcpt_addr}} rcpt@x.test " ..
       "{{rcpt_host}} {} {{rcpt_mailer}} local")
-- At EOM the connect- and mail-stage macros are still there.
header("X-Macros-Eom", "i QID1 {{msg_id}} {} j mta.test " ..
       "{{daemon_name}} lua-mta {{mail_addr}} sender@x.test")
mt.disconnect(conn)
