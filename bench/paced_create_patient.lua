-- create-patient at a bounded rate: each connection waits HC_DELAY_MS between requests, so
-- connections / delay sets the offered load (20 connections × 20 ms ≈ 1,000 writes/s).
package.path = "bench/?.lua;" .. package.path
local common = require("common")
local body = '{"given_name":"Bench","family_name":"Patient","birth_date":"1980-01-01","sex":"unknown"}'
local delay_ms = tonumber(os.getenv("HC_DELAY_MS") or "20")
request = function()
  return wrk.format("POST", "/api/v1/patients", common.headers(), body)
end
delay = function()
  return delay_ms
end
