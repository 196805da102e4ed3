-- The bench's page load for wrk: each thread sends the case's request with its own share
-- of the browsers' cookies, in turn, and counts every answer but a 200 (wrk itself would
-- count a redirect to the sign-in page as a success). done prints one line for bench.
--
-- Arguments: a file of Cookie headers (one browser's a line), number of threads, path, then
-- header name and value pairs.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, count, path = args[1], tonumber(args[2]), args[3]
  local headers = {}
  for i = 4, #args - 1, 2 do
    headers[args[i]] = args[i + 1]
  end
  prepared, turn, bad, first_bad = {}, 0, 0, 0
  local i = 0
  for cookie in io.lines(file) do
    if i % count == id then
      headers["Cookie"] = cookie
      table.insert(prepared, wrk.format("GET", path, headers))
    end
    i = i + 1
  end
  if #prepared == 0 then
    error("no browser for thread " .. id)
  end
end

function request()
  turn = turn % #prepared + 1
  return prepared[turn]
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status
    end
  end
end

function done(summary, latency, requests)
  local bad, first = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("bad")
    if first == 0 then
      first = t:get("first_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "wrk-result requests=%d duration_us=%d p50_us=%d p99_us=%d bad=%d first_bad=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad, first,
    e.connect, e.read, e.write, e.timeout, e.status))
end
