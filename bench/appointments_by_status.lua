package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- Lists by status alone, in start-time order: the upcoming bookings, and the cancellations (which
-- lie throughout the history).
local statuses = { "booked", "cancelled" }
local i = 0
request = function()
  i = i + 1
  local path = string.format("/api/v1/appointments?limit=20&status=%s", statuses[(i % #statuses) + 1])
  return wrk.format("GET", path, common.headers())
end
