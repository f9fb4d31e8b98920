-- wrk script: POST the AdmissionReview in the file named by $BENCH_BODY.
-- Usage: BENCH_BODY=bench/fixtures/realistic.json wrk -s bench/post.lua https://HOST:PORT/mutate
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = os.getenv("BENCH_BODY")
if path == nil or path == "" then
  error("set BENCH_BODY to the request body file")
end
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
