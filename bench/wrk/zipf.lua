-- zipf.lua: GETs of product ids drawn from a Zipf distribution over n products (rank 1 the most requested).
-- Arguments: path template with one %s for the product id, n, exponent s, first product id, and an
-- optional sequence number (0 when left out).
--   wrk ... -s zipf.lua http://host:port -- '/v1/shops/x/widgets/subscription.js?product=%s' 10000 1.0 8000000000001 3
-- Each thread draws from its own fixed seed, taken from the sequence number and the thread's index:
-- two runs given the same sequence number send the same sequence of keys (the two servers of one
-- round in bench/run.py), and runs given different numbers send different ones (its rounds).

dofile("report.lua")

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

local template, n, first
local cdf = {}

function init(args)
   template = args[1]
   n = tonumber(args[2])
   local s = tonumber(args[3])
   first = tonumber(args[4])
   local sequence = tonumber(args[5]) or 0
   local total = 0
   for k = 1, n do
      total = total + 1 / k ^ s
      cdf[k] = total
   end
   for k = 1, n do
      cdf[k] = cdf[k] / total
   end
   -- Sequence 0 keeps the seeds of old (1001, 1002...); a thread index stays below 1000.
   math.randomseed(1000 * (sequence + 1) + (seed or 0))
end

function request()
   local u = math.random()
   -- The first rank whose cumulative probability reaches u (binary search over the CDF).
   local lo, hi = 1, n
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   -- %.0f, not %d: product ids pass 2^31, and Lua numbers are doubles (exact below 2^53).
   return wrk.format(nil, string.format(template, string.format("%.0f", first + lo - 1)))
end
