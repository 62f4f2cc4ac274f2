package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- Lists by status alone, in start-time order: the upcoming bookings, and the cancellations (which
-- lie throughout the history).
local next_status = common.rotation({ "booked", "cancelled" })
request = function()
  local path = string.format("/api/v1/appointments?limit=20&status=%s", next_status())
  return wrk.format("GET", path, common.headers())
end
