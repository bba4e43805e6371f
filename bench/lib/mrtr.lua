-- wrk script of bench/run's mrtr section: multi-round-trip requests
-- (2026-07-28) end to end, and a machine-readable summary of them.
--
--   wrk ... -s bench/lib/mrtr.lua URL -- FIRST_BODY_FILE RETRY_BODY_FILE
--
-- A round trip is two requests: the first call, which the server answers
-- input-required with a requestState, then the retry carrying the answer in
-- inputResponses and that state (RETRY_BODY_FILE with the state in place of
-- REQUEST_STATE), which it answers complete. Each state goes through its
-- thread's queue and is sent back once, by whichever connection is free
-- next; a connection with no state waiting starts a new round trip. The
-- summary's `rps` is completed round trips per second; `http_rps` counts
-- both requests, and the latencies are those of single requests.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local function read_file(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("*a")
   f:close()
   return s
end

local first, retry
local states, head, tail = {}, 1, 0
-- Globals, so done() can read them from each thread.
trips = 0
failures = 0

function init(args)
   first = wrk.format("POST", nil, nil, read_file(args[1]))
   retry = read_file(args[2])
end

function request()
   if head <= tail then
      local state = states[head]
      states[head] = nil
      head = head + 1
      local body = retry:gsub("REQUEST_STATE", function() return state end)
      return wrk.format("POST", nil, nil, body)
   end
   return first
end

function response(status, headers, body)
   local state = status == 200 and body:match('"requestState":"([^"]+)"')
   if state then
      tail = tail + 1
      states[tail] = state
   elseif status == 200 and body:find('"resultType":"complete"', 1, true) then
      trips = trips + 1
   else
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local t, f = 0, 0
   for _, thread in ipairs(threads) do
      t = t + thread:get("trips")
      f = f + thread:get("failures")
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f http_rps=%.1f failures=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
      t, summary.duration, t / secs, summary.requests / secs, f,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status + f, e.connect, e.read, e.write, e.timeout))
end
