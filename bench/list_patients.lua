package.path = "bench/?.lua;" .. package.path
local common = require("common")
request = function()
  return wrk.format("GET", "/api/v1/patients?limit=20", common.headers())
end
