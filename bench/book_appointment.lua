package.path = "bench/?.lua;" .. package.path
local common = require("common")
local patients = common.read_lines(os.getenv("HC_PATIENTS"))
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))

-- Every request books a slot no other request uses, so the run measures booking, not the conflict
-- path: slot number s (thread number × 10^6 + counter) is practitioner s mod P at the 30-minute
-- time s div P, and patient s mod N (N ≥ P, so a patient's slots are at least one time apart).
-- Times stay within the booking horizon (HEALTHCORE_BOOKING_HORIZON_DAYS, five years by default):
-- with 50 practitioners, two threads reach about two and a half years ahead.
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
  local start = base + math.floor(slot / #practitioners) * 1800
  local body = string.format(
    '{"patient_id":"%s","practitioner_id":"%s","start":"%s","end":"%s","reason":"benchmark"}',
    patients[(slot % #patients) + 1], practitioners[(slot % #practitioners) + 1],
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
  return wrk.format("POST", "/api/v1/appointments", common.headers(), body)
end
