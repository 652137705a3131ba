-- negotiate.lua: option negotiation with TclMilter (everything.tcl).
-- Run as: miltertest -D sock=SPEC -D dir=tests/lua -s negotiate.lua
-- Prints "ok NAME" for each passed check; any failed check raises an error.

dofile(dir .. "/common.lua")

-- Everything offered (libmilter's current defaults).
conn = connect("")
check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate-v6")
for _, a in ipairs({"SMFIF_ADDHDRS", "SMFIF_CHGHDRS", "SMFIF_CHGBODY",
                    "SMFIF_ADDRCPT", "SMFIF_ADDRCPT_PAR", "SMFIF_DELRCPT",
                    "SMFIF_QUARANTINE", "SMFIF_CHGFROM"}) do
    check(mt.test_action(conn, _G[a]), "action-" .. a)
end
-- Every callback is registered: no step is switched off.
for _, o in ipairs({"SMFIP_NOCONNECT", "SMFIP_NOHELO", "SMFIP_NOMAIL",
                    "SMFIP_NORCPT", "SMFIP_NOBODY", "SMFIP_NOHDRS",
                    "SMFIP_NOEOH", "SMFIP_NOUNKNOWN", "SMFIP_NODATA"}) do
    check(not mt.test_option(conn, _G[o]), "step-" .. o)
end
check(mt.test_option(conn, SMFIP_SKIP), "option-SMFIP_SKIP")
check(not mt.test_option(conn, SMFIP_HDR_LEADSPC), "no-SMFIP_HDR_LEADSPC")
mt.disconnect(conn)

-- An MTA offering less (version 2, only ADDHDRS and CHGHDRS, the v2
-- protocol steps): negotiation succeeds, SKIP is not asked for (not
-- offered) and the session works.  (miltertest's test_action cannot
-- tell what was requested beyond the offer: libmilter gives the same.)
conn = connect("-2")
check(mt.negotiate(conn, 2, SMFIF_ADDHDRS + SMFIF_CHGHDRS, 127) == nil,
      "negotiate-v2")
check(mt.test_action(conn, SMFIF_ADDHDRS), "v2-action-ADDHDRS")
check(mt.test_action(conn, SMFIF_CHGHDRS), "v2-action-CHGHDRS")
check(not mt.test_option(conn, SMFIP_SKIP), "v2-no-SKIP")
-- The session works at that level.
check(mt.conninfo(conn, "client.test", "127.0.0.1") == nil, "v2-conninfo")
reply(conn, SMFIR_CONTINUE, "v2-conninfo-continue")
mt.disconnect(conn)
