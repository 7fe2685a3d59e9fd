-- wrk script: the form post a landing page sends, one visitor per request.
-- Three posts in four come from a new address; every fourth from the visitor of the post
-- before, coming back for another resource (a returning lead: an update, not an insert).
-- Arguments (after --): origin, run tag, the common fields (URL-encoded), then one
-- resource_id=terms_sha256 pair per resource.
-- The last line printed is "RESULT {json}" for benchmarks/run.py.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  origin, tag, common = args[1], args[2], args[3]
  resources = {}
  for i = 4, #args do
    local id, sha = args[i]:match("^([^=]+)=(%x+)$")
    table.insert(resources, {id = id, terms = sha})
  end
end

function request()
  counter = counter + 1
  local visitor = counter
  if counter % 4 == 0 then
    visitor = counter - 1
  end
  local resource = resources[counter % #resources + 1]
  local body = string.format(
    "email=bench.%s.%d.%d%%40example.com&resource_id=%s&terms_sha256=%s&%s",
    tag, thread_id, visitor, resource.id, resource.terms, common)
  -- wrk.format takes these headers instead of wrk.headers, so all of them go here.
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Origin"] = origin,
    ["Referer"] = origin .. "/resources/" .. resource.id .. "/",
  }
  return wrk.format("POST", "/submit", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
