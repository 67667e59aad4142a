-- Replays a request file written by bench/load.py: one request per line,
-- METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY. Each wrk thread starts at its own offset.
-- response() counts 4xx and 5xx per thread (wrk's own "status" error lumps every status >= 400
-- together); done() sums them over the threads and prints one JSON line (prefixed with
-- "WRK_JSON ") for load.py to parse.

local requests = {}
local position = 1
local thread_counter = 0
local threads = {}
status_4xx = 0
status_5xx = 0

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
  threads[#threads + 1] = thread
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

function response(status, headers, body)
  if status >= 500 then
    status_5xx = status_5xx + 1
  elseif status >= 400 then
    status_4xx = status_4xx + 1
  end
end

function done(summary, latency, requests_stats)
  local errors = summary.errors
  local total_4xx, total_5xx = 0, 0
  for _, thread in ipairs(threads) do
    total_4xx = total_4xx + (thread:get("status_4xx") or 0)
    total_5xx = total_5xx + (thread:get("status_5xx") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"status_4xx": %d, "status_5xx": %d, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    total_4xx, total_5xx,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
