package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- The production shape: 80 % reads, 15 % bookings, 5 % registrations, decided per request.
-- Reads: 50 % a patient by id, 15 % a name-prefix search (HC_PREFIXES), 15 % a practitioner's day.
-- Bookings never conflict (`common.bookings`).
local patients = common.read_lines(os.getenv("HC_PATIENTS"))
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))
local next_prefix = common.cycle(os.getenv("HC_PREFIXES"))
local registration = '{"given_name":"Bench","family_name":"Patient","birth_date":"1980-01-01","sex":"unknown","email":"bench@example.org"}'

setup = common.number_threads()
-- Each thread its own sequence of request kinds.
init = function()
  math.randomseed(thread_number)
end

local booking = common.bookings(patients, practitioners)
local base = common.first_booking_day

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
