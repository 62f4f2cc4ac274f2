package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- A practitioner's day: HC_PRACTITIONERS × HC_DAYS (YYYY-MM-DD, days on which they see patients).
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))
local days = common.read_lines(os.getenv("HC_DAYS"))
local i = 0
request = function()
  i = i + 1
  local day = days[(i * 7 % #days) + 1]
  local path = string.format("/api/v1/appointments?limit=20&practitioner_id=%s&from=%sT00:00:00Z&to=%sT23:59:59Z",
    practitioners[(i % #practitioners) + 1], day, day)
  return wrk.format("GET", path, common.headers())
end
