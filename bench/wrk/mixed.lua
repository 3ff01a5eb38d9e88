-- Part 7's request mix for wrk: every connection walks a weighted request list and records, per request
-- name, its latency and whether it failed; done() prints one JSON line with per-name percentiles.
--
-- The list comes from a Lua file the harness writes with mode 0600 (it holds bearer tokens, never put on a
-- command line) and names in TSBENCH_WRK_REQUESTS; it sets REQUESTS = {{name=, method=, path=, body=,
-- headers=, ok={[status]=true}}, ...}. wrk's Lua state belongs to a thread and response() does not say which
-- connection answered, so the harness runs one connection per wrk thread: then the request() and response()
-- calls of a thread alternate and the time between them is that request's latency.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } tsbench_timespec;
int clock_gettime(int clock_id, tsbench_timespec *tp);
]]
local now_ts = ffi.new("tsbench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, now_ts)  -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000000 + tonumber(now_ts.tv_nsec) / 1000
end

dofile(os.getenv("TSBENCH_WRK_REQUESTS"))

local threads = {}
local counter = 0

-- The request names in list order, each once: samples live in flat per-name globals (lat_1, fail_1 ...),
-- because wrk's thread:get() copies flat tables only (a nested one crashes it).
local names, slot = {}, {}
for _, r in ipairs(REQUESTS) do
  if not slot[r.name] then
    table.insert(names, r.name)
    slot[r.name] = #names
  end
end

function setup(thread)
  -- Each thread starts at its own place in the list, so connections do not move through it in lockstep.
  thread:set("offset", counter * 7)
  counter = counter + 1
  table.insert(threads, thread)
end

local built, index, current, started = {}, 0, nil, 0
statuses = {}

function init(args)
  for i, r in ipairs(REQUESTS) do
    built[i] = wrk.format(r.method, r.path, r.headers, r.body)
  end
  for i = 1, #names do
    _G["lat_" .. i] = {}
    _G["fail_" .. i] = 0
  end
  index = offset % #REQUESTS
end

function request()
  index = index % #REQUESTS + 1
  current = REQUESTS[index]
  started = now_us()
  return built[index]
end

function response(status, headers, body)
  local i = slot[current.name]
  local list = _G["lat_" .. i]
  list[#list + 1] = now_us() - started
  if not current.ok[status] then
    _G["fail_" .. i] = _G["fail_" .. i] + 1
    local key = current.name .. " " .. status
    statuses[key] = (statuses[key] or 0) + 1
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

function done(summary, latency, requests)
  local all, parts, kinds, total = {}, {}, {}, 0
  for i, name in ipairs(names) do
    local merged, failed = {}, 0
    for _, thread in ipairs(threads) do
      for _, v in ipairs(thread:get("lat_" .. i)) do
        merged[#merged + 1] = v
        all[#all + 1] = v
        total = total + v
      end
      failed = failed + thread:get("fail_" .. i)
    end
    table.sort(merged)
    table.insert(parts, string.format('"%s":{"requests":%d,"failures":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}',
      name, #merged, failed, percentile(merged, 0.5), percentile(merged, 0.95), percentile(merged, 0.99)))
  end
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("statuses")) do kinds[key] = (kinds[key] or 0) + count end
  end
  local kind_parts = {}
  for key, count in pairs(kinds) do table.insert(kind_parts, string.format('"%s":%d', key, count)) end
  table.sort(all)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"recorded":%d,"mean_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"endpoints":{%s},' ..
    '"failure_kinds":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, #all,
    #all > 0 and total / #all or 0, percentile(all, 0.5), percentile(all, 0.95), percentile(all, 0.99),
    table.concat(parts, ","), table.concat(kind_parts, ",")))
end
