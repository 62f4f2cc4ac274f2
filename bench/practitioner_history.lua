package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- A practitioner's past, one-sided (`?practitioner_id=…&to=now`): the first page of every
-- appointment they have had, counted.
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
local i = 0
request = function()
  i = i + 1
  local path = string.format("/api/v1/appointments?limit=20&practitioner_id=%s&to=%s",
    practitioners[(i % #practitioners) + 1], now)
  return wrk.format("GET", path, common.headers())
end
