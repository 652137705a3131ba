-- common.lua: the checks every tests/lua script uses.  Each script loads
-- it first with  dofile(dir .. "/common.lua"); tests/miltertest-lua.test
-- runs them as: miltertest -D sock=SPEC -D dir=tests/lua -s SCRIPT.lua
-- Every passed check prints "ok NAME"; a failed one raises an error, so
-- miltertest exits non-zero at the first failure.

-- check: a condition that must hold.
function check(cond, name)
    if not cond then
        error("FAILED: " .. name)
    end
    mt.echo("ok " .. name)
end

-- same: a value that must equal the expected one.
function same(got, want, name)
    if got ~= want then
        error("FAILED: " .. name .. ": got " .. tostring(got) ..
              ", expected " .. tostring(want))
    end
    mt.echo("ok " .. name)
end

-- reply: the milter's next reply must be want.
function reply(conn, want, name)
    same(mt.getreply(conn), want, name)
end

-- connect: a new connection to the milter; tag ends the check's name.
function connect(tag)
    local conn = mt.connect(sock, 20, 0.1)
    check(conn ~= nil, "connect" .. tag)
    return conn
end

-- open: connect, then CONNECT from client.test at addr.
function open(addr, tag)
    local conn = connect(tag)
    check(mt.conninfo(conn, "client.test", addr) == nil, "conninfo" .. tag)
    return conn
end
