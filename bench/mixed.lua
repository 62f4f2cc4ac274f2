package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- The production shape: 80 % reads, 15 % bookings, 5 % registrations, decided per request.
-- Reads: 50 % a patient by id, 15 % a name-prefix search (HC_PREFIXES), 15 % a practitioner's day.
-- Bookings use the slot scheme of book_appointment.lua, so none of them conflicts.
local patients = common.read_lines(os.getenv("HC_PATIENTS"))
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))
local next_prefix = common.cycle(os.getenv("HC_PREFIXES"))
local registration = '{"given_name":"Bench","family_name":"Patient","birth_date":"1980-01-01","sex":"unknown","email":"bench@example.org"}'

local next_thread = 0
setup = function(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end
-- Each thread its own sequence of request kinds.
init = function()
  math.randomseed(thread_number)
end

local base = os.time() + 86400
local counter = 0
local function booking()
  counter = counter + 1
  local slot = thread_number * 1000000 + counter
  local start = base + math.floor(slot / #practitioners) * 1800
  local body = string.format(
    '{"patient_id":"%s","practitioner_id":"%s","start":"%s","end":"%s","reason":"benchmark"}',
    patients[(slot % #patients) + 1], practitioners[(slot % #practitioners) + 1],
    os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
  return wrk.format("POST", "/api/v1/appointments", common.headers(), body)
end

local i = 0
request = function()
  i = i + 1
  local roll = math.random(100)
  if roll <= 50 then
    return wrk.format("GET", "/api/v1/patients/" .. patients[(i % #patients) + 1], common.headers())
  elseif roll <= 65 then
    return wrk.format("GET", "/api/v1/patients?limit=20&name=" .. next_prefix(), common.headers())
  elseif roll <= 80 then
    -- One of the next seven days, where the bookings of this run land.
    local day = os.date("!%Y-%m-%d", base + (i % 7) * 86400)
    local path = string.format("/api/v1/appointments?limit=20&practitioner_id=%s&from=%sT00:00:00Z&to=%sT23:59:59Z",
      practitioners[(i % #practitioners) + 1], day, day)
    return wrk.format("GET", path, common.headers())
  elseif roll <= 95 then
    return booking()
  else
    return wrk.format("POST", "/api/v1/patients", common.headers(), registration)
  end
end
