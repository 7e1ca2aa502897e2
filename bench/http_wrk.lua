-- wrk script for bench_http.sh: POSTs pre-built search bodies (one JSON per line of the
-- file named by the BODIES environment variable) in rotation to INDEX's search route, and
-- prints one JSON line with throughput, latency percentiles and every kind of failure.
local bodies = {}
local path = "/v1/indexes/" .. (os.getenv("INDEX") or "idx") .. "/search"

local function load()
  for line in io.lines(os.getenv("BODIES")) do
    bodies[#bodies + 1] = line
  end
end

local counter = 0
local non200 = 0

function init(args)
  load()
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[counter])
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "qps": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout))
end
