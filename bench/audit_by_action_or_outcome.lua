package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- The questions of a security review, newest first: the denied attempts, a rare action (one
-- record in ten thousand), and a common one that is no disclosure (bookings).
local next_query = common.rotation({ "outcome=denied", "action=patient.deactivate", "action=appointment.book" })
request = function()
  return wrk.format("GET", "/api/v1/audit-events?limit=20&" .. next_query(), common.headers())
end
