-- wrk script: each thread cycles through its own list of requests, read from a plan file.
--
-- Environment:
--   BENCH_PLAN   path of the plan file, written by bench/run.py:
--                  "#thread N" starts thread N's list; then one request per line:
--                  METHOD <TAB> PATH [<TAB> JSON BODY]
--                "@N@" in a path or body becomes a per-thread counter ("<thread>-<n>"), so that
--                every PATCH really changes something.
--   BENCH_TOKEN  bearer token
--   BENCH_STOP   optional: a thread stops after this many responses (memory phase)
--
-- One connection per thread (wrk -t N -c N): a thread's requests are strictly sequential, so the
-- alternating bodies (v1 -> v2 -> v1 repoints, SSL mode toggles) always apply to the state the
-- previous request of that thread left.
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local requests = {}
local responses = 0
local stop_after = tonumber(os.getenv("BENCH_STOP") or "0")
local shown = 0
local tid_text = "0"

function init(args)
   local tid = tonumber(wrk.thread:get("tid"))
   tid_text = tostring(tid)
   local current = -1
   for line in io.lines(os.getenv("BENCH_PLAN")) do
      local n = line:match("^#thread (%d+)$")
      if n then
         current = tonumber(n)
      elseif current == tid and #line > 0 then
         local method, path, body = line:match("^([A-Z]+)\t([^\t]+)\t?(.*)$")
         table.insert(requests, {method = method, path = path, body = body ~= "" and body or nil})
      end
   end
   if #requests == 0 then
      error("no requests for thread " .. tid_text)
   end
end

local auth = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")

-- The position advances in response(), not here: wrk calls request() once more on the first thread
-- at start-up (to check the script), and again after a reconnect, without a response in between.
local position = 1

function request()
   counter = counter + 1
   local r = requests[position]
   local stamp = tid_text .. "-" .. counter
   local headers = {["Authorization"] = auth, ["Accept"] = "application/json"}
   local body = nil
   if r.body then
      body = r.body:gsub("@N@", stamp)
      headers["Content-Type"] = "application/json"
   end
   return wrk.format(r.method, (r.path:gsub("@N@", stamp)), headers, body)
end

function response(status, headers, body)
   responses = responses + 1
   position = position % #requests + 1
   if status >= 400 and shown < 3 then
      shown = shown + 1
      io.stderr:write("BENCH_ERR thread " .. tid_text .. " status " .. status .. ": " .. body:sub(1, 400) .. "\n")
   end
   if stop_after > 0 and responses == stop_after then
      io.stderr:write("BENCH_STOPPED thread " .. tid_text .. "\n")
      io.stderr:flush()
      wrk.thread:stop()
   end
end

-- Latency quantiles for merging several runs (bench/run.py alternates short API and floor slices):
-- every 0.5% up to 95%, every 0.1% up to 99.9%, then 99.95% and the maximum.
local grid = {}
for i = 1, 190 do grid[#grid + 1] = i * 0.5 end
for i = 951, 999 do grid[#grid + 1] = i * 0.1 end
grid[#grid + 1] = 99.95

function done(summary, latency, requests)
   local e = summary.errors
   local q = {}
   if summary.requests > 0 then
      for _, p in ipairs(grid) do q[#q + 1] = string.format("[%.2f, %d]", p, latency:percentile(p)) end
   end
   q[#q + 1] = string.format("[100, %d]", latency.max)
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
      '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50": %d, "p90": %d, "p99": %d, "max": %d, ' ..
      '"mean": %.1f, "quantiles": [%s]}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
      table.concat(q, ", ")))
end
