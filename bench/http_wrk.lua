-- wrk script for bench_http.sh: POSTs pre-built search bodies (one JSON per line of the
-- file named by the BODIES environment variable) in rotation to INDEX's search route, and
-- prints one JSON line with throughput, latency percentiles and every kind of failure.
-- It also collects the engine time the server reports in each answer (timing_ms.search,
-- and timing_ms.encode for text queries): their medians, measured on the very requests wrk
-- timed, separate the server's own overhead from the engine's time without relying on a
-- second run on a machine whose speed drifts.
local bodies = {}
local path = "/v1/indexes/" .. (os.getenv("INDEX") or "idx") .. "/search"

local function load()
  for line in io.lines(os.getenv("BODIES")) do
    bodies[#bodies + 1] = line
  end
end

local counter = 0
search_ms = {}
encode_ms = {}

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  load()
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[counter])
end

function response(status, headers, body)
  if status ~= 200 then return end -- wrk counts these in errors.status
  local enc, srch = body:match('"timing_ms": {"encode": ([%d%.]+), "search": ([%d%.]+)}')
  if srch then
    search_ms[#search_ms + 1] = tonumber(srch)
    encode_ms[#encode_ms + 1] = tonumber(enc)
  end
end

local function median(t)
  if #t == 0 then return 0 end
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

function done(summary, latency, requests)
  local e = summary.errors
  local srch, enc = {}, {}
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("search_ms")) do srch[#srch + 1] = v end
    for _, v in ipairs(t:get("encode_ms")) do enc[#enc + 1] = v end
  end
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "qps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "server_search_p50_ms": %.3f, ' ..
    '"server_encode_p50_ms": %.3f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, median(srch), median(enc), e.connect, e.read, e.write, e.status,
    e.timeout))
end
