package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- The questions of a security review, newest first: the denied attempts, a rare action (one
-- record in ten thousand), and a common one that is no disclosure (bookings).
local queries = { "outcome=denied", "action=patient.deactivate", "action=appointment.book" }
local i = 0
request = function()
  i = i + 1
  local path = string.format("/api/v1/audit-events?limit=20&%s", queries[(i % #queries) + 1])
  return wrk.format("GET", path, common.headers())
end
