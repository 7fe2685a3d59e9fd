-- wrk script for benchmarks/defences.py: the form post a landing page sends with its page
-- script on (a signed form token per post, the empty honeypot), one new visitor per request.
-- Arguments (after --): origin, run tag, the common fields (URL-encoded), a file of form
-- tokens (one per line, "-" for none), then one resource_id=terms_sha256 pair per resource.
-- Answers are counted by status; the last line printed is "RESULT {json}".

local threads = {}
counter = 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  origin, tag, common = args[1], args[2], args[3]
  tokens = {}
  if args[4] ~= "-" then
    for line in io.lines(args[4]) do
      table.insert(tokens, line)
    end
  end
  resources = {}
  for i = 5, #args do
    local id, sha = args[i]:match("^([^=]+)=(%x+)$")
    table.insert(resources, {id = id, terms = sha})
  end
end

function request()
  counter = counter + 1
  local resource = resources[counter % #resources + 1]
  local token = ""
  if #tokens > 0 then
    -- More posts than tokens would reuse one (held as replayed): defences.py mints enough.
    token = tokens[(counter - 1) % #tokens + 1]
  end
  local body = string.format(
    "email=bench.%s.%d%%40example.com&resource_id=%s&terms_sha256=%s&form_token=%s&website=&%s",
    tag, counter, resource.id, resource.terms, token, common)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Origin"] = origin,
    ["Referer"] = origin .. "/resources/" .. resource.id .. "/",
  }
  return wrk.format("POST", "/submit", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  -- Each thread counted in its own Lua state; done() runs in the main one.
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local counts = {}
  for status, n in pairs(total) do
    table.insert(counts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, table.concat(counts, ", ")))
end
