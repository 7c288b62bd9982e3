-- Sends each prepared request exactly once, split across wrk's threads, then says so.
-- Rows are "path<TAB>header values...<TAB>body"; header names come as arguments.
-- A connection that asks for more once its thread's rows are used up gets
-- GET /bench-done, whose 404 is not counted: the real routes never answer 404.

local threads = {}
local index = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local names = args
  local file = assert(io.open(os.getenv("BENCH_ROWS"), "r"))
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  prepared = {}
  local line_no = 0
  for line in file:lines() do
    if line_no % nthreads == tid then
      local fields = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do
        table.insert(fields, field)
      end
      local headers = {}
      for i, name in ipairs(names) do
        headers[name] = fields[i + 1]
      end
      table.insert(prepared, wrk.format("POST", fields[1], headers, fields[#fields]))
    end
    line_no = line_no + 1
  end
  file:close()
  total = #prepared
  ok, refused, answered = 0, 0, 0
  done_request = wrk.format("GET", "/bench-done")
  -- wrk 4 calls request() once on the first thread's state to check it, before
  -- any connection: that call must not use up a row.
  checking = tid == 0
end

function request()
  if checking then
    checking = false
    return done_request
  end
  index = index + 1
  if index <= total then
    return prepared[index]
  end
  return done_request
end

function response(status, headers, body)
  if status == 404 then
    return
  end
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    refused = refused + 1
  end
  if answered == total then
    -- wrk's main thread sleeps out -d; the runner sends SIGINT once all are in.
    io.write("thread done\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local sent, answered, acked, other = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("total")
    answered = answered + thread:get("answered")
    acked = acked + thread:get("ok")
    other = other + thread:get("refused")
  end
  io.write(string.format(
    '{"sent": %d, "answered": %d, "acked": %d, "other_status": %d, "socket_errors": %d, ' ..
    '"duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    sent, answered, acked, other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.max))
end
