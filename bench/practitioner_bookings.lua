package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- A practitioner's bookings, with no window (`?practitioner_id=…&status=booked`): what grows with
-- the practitioner's history if the booked ones are found by testing every appointment.
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))
local i = 0
request = function()
  i = i + 1
  local path = string.format("/api/v1/appointments?limit=20&status=booked&practitioner_id=%s",
    practitioners[(i % #practitioners) + 1])
  return wrk.format("GET", path, common.headers())
end
