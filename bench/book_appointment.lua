package.path = "bench/?.lua;" .. package.path
local common = require("common")
local patients = common.read_lines(os.getenv("HC_PATIENTS"))
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))

-- Every request books a 30-minute slot no other request uses (thread number × 10^6 + counter),
-- so the run measures booking, not the conflict path.
local counter = 0

local next_thread = 0
setup = function(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end
local base = os.time() + 86400
request = function()
  counter = counter + 1
  local slot = thread_number * 1000000 + counter
  local start = base + slot * 1800
  local body = string.format(
    '{"patient_id":"%s","practitioner_id":"%s","start":"%s","end":"%s","reason":"benchmark"}',
    patients[(slot % #patients) + 1], practitioners[(slot % #practitioners) + 1],
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
  return wrk.format("POST", "/api/v1/appointments", common.headers(), body)
end
