-- revalidate.lua: a conditional GET carrying the ETag the client already holds: every answer should be a 304.
-- Argument: the ETag, quotes included (wrk ... -s revalidate.lua URL -- '"abc"').

dofile("report.lua")

function init(args)
   -- Set before wrk formats its request, so the header is part of the reused request bytes.
   wrk.headers["If-None-Match"] = args[1]
end
