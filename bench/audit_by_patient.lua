package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- What was disclosed about a patient (HC_PATIENTS) in the last ninety days, as an auditor asks.
local next_patient = common.cycle(os.getenv("HC_PATIENTS"))
local from = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 90 * 86400)
local to = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time())
request = function()
  local path = string.format("/api/v1/audit-events?limit=20&patient_id=%s&from=%s&to=%s", next_patient(), from, to)
  return wrk.format("GET", path, common.headers())
end
