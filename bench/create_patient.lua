package.path = "bench/?.lua;" .. package.path
local common = require("common")
local body = '{"given_name":"Bench","family_name":"Patient","birth_date":"1980-01-01","sex":"unknown","email":"bench@example.org"}'
request = function()
  return wrk.format("POST", "/api/v1/patients", common.headers(), body)
end
