-- fixed.lua: the same GET on every request (the URL and -H headers from the command line).
-- wrk formats the request once and reuses the bytes, so the load generator costs as little as it can.

dofile("report.lua")
