-- wrk script of bench/run: POSTs one JSON-RPC body to /mcp, optionally with
-- a session id per connection, and prints a machine-readable summary.
--
--   wrk ... -s bench/lib/mcp.lua URL -- BODY_FILE [SIDS_FILE|-] [NTHREADS] [STOP_AFTER]
--
-- Headers (Content-Type, Accept, MCP-Protocol-Version, ...) come from wrk's
-- -H flags. BODY_FILE holds the request body. SIDS_FILE holds session ids,
-- one a line: thread i (of NTHREADS) takes ids i, i+N, i+2N, ... and sends
-- them round-robin as Mcp-Session-Id. With -tN -cN every connection has its
-- own session; with fewer threads than connections a thread's connections
-- share its ids round-robin. STOP_AFTER > 0 stops each thread after that many
-- responses (the session-creation runs use it to create a fixed number).

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("index", counter)
end

local function read_file(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

-- wrk.format replaces wrk.headers (the -H flags) with the table it is
-- given, so extra headers go on a copy.
local function with_headers(extra)
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   for k, v in pairs(extra) do h[k] = v end
   return h
end

local requests = {}
local next_request = 1
local responses = 0
local stop_after = 0

function init(args)
   local body = read_file(args[1])
   local sids_file = args[2] or "-"
   local nthreads = tonumber(args[3] or "1")
   stop_after = tonumber(args[4] or "0")
   if sids_file ~= "-" then
      local sids = {}
      for line in io.lines(sids_file) do
         if #line > 0 then sids[#sids + 1] = line end
      end
      assert(#sids > 0, "no session ids in " .. sids_file)
      local i = index
      while i <= #sids do
         local headers = with_headers({["Mcp-Session-Id"] = sids[i]})
         requests[#requests + 1] = wrk.format("POST", nil, headers, body)
         i = i + nthreads
      end
      if #requests == 0 then
         -- More threads than sessions: wrap around.
         local sid = sids[((index - 1) % #sids) + 1]
         requests[1] = wrk.format("POST", nil, with_headers({["Mcp-Session-Id"] = sid}), body)
      end
   else
      requests[1] = wrk.format("POST", nil, with_headers({}), body)
   end
   if stop_after > 0 then
      -- Defined only when needed: a response() makes wrk hand every
      -- response's headers and body to Lua, which costs the load generator.
      response = function(status, headers, body)
         responses = responses + 1
         if responses >= stop_after then wrk.thread:stop() end
      end
   end
end

function request()
   local r = requests[next_request]
   next_request = next_request + 1
   if next_request > #requests then next_request = 1 end
   return r
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
