package.path = "bench/?.lua;" .. package.path
local common = require("common")
local ids = common.read_lines(os.getenv("HC_PATIENTS"))
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/patients/" .. ids[(i % #ids) + 1], common.headers())
end
