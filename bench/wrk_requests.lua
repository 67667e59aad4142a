-- Replays a request file written by bench/load.py: one request per line,
-- METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY. Each wrk thread starts at its own offset.
-- done() prints one JSON line (prefixed with "WRK_JSON ") for load.py to parse.

local requests = {}
local position = 1
local thread_counter = 0

local function load(path)
  local loaded = {}
  for line in io.lines(path) do
    local method, request_path, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {["Authorization"] = "Token " .. token}
    if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
    loaded[#loaded + 1] = wrk.format(method, request_path, headers, body)
  end
  return loaded
end

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_number", thread_counter)
end

function init(args)
  requests = load(os.getenv("WRK_REQUESTS_FILE"))
  position = ((thread_number or 1) * 7919) % #requests + 1
end

function request()
  local next_request = requests[position]
  position = position % #requests + 1
  return next_request
end

function done(summary, latency, requests_stats)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
