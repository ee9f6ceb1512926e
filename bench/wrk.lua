-- wrk script for `make bench` (bench/run.pl). The request's method and body
-- come from the environment (BENCH_METHOD, BENCH_BODY_FILE); headers come from
-- wrk's -H options. At the end, one machine-readable line on stdout with exact
-- counts and latency percentiles in microseconds.

local method = os.getenv("BENCH_METHOD")
if method and method ~= "" then
    wrk.method = method
end

local bodyfile = os.getenv("BENCH_BODY_FILE")
if bodyfile and bodyfile ~= "" then
    local f = assert(io.open(bodyfile, "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
        "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
