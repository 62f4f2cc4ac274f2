-- Shared by the wrk scripts: the bearer token and fixture ids come from the environment that
-- scripts/bench sets; each wrk thread gets its own number for generating distinct data.
local common = {}

common.token = os.getenv("HC_TOKEN")

function common.read_lines(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  return lines
end

-- A function that returns the values one after another, round and round.
function common.rotation(values)
  local i = 0
  return function()
    i = i + 1
    return values[(i % #values) + 1]
  end
end

-- A function that returns the lines of the file at `path` one after another, round and round.
function common.cycle(path)
  return common.rotation(common.read_lines(path))
end

function common.headers(extra)
  local headers = { ["Authorization"] = "Bearer " .. common.token, ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return headers
end

-- Bookings that never conflict, so that a run measures booking, not the conflict path: slot number
-- s (thread number × 10^6 + counter) is practitioner s mod P at the 30-minute time s div P from
-- tomorrow, and patient s mod N (N ≥ P, so a patient's slots are at least one time apart). Times
-- stay within the booking horizon (HEALTHCORE_BOOKING_HORIZON_DAYS, five years by default): with 50
-- practitioners, two threads reach about two and a half years ahead. Each wrk thread numbers itself
-- in `thread_number` (see `common.number_threads`).
common.first_booking_day = os.time() + 86400

function common.bookings(patients, practitioners)
  local counter = 0
  return function()
    counter = counter + 1
    local slot = thread_number * 1000000 + counter
    local start = common.first_booking_day + math.floor(slot / #practitioners) * 1800
    local body = string.format(
      '{"patient_id":"%s","practitioner_id":"%s","start":"%s","end":"%s","reason":"benchmark"}',
      patients[(slot % #patients) + 1], practitioners[(slot % #practitioners) + 1],
      os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800))
    return wrk.format("POST", "/api/v1/appointments", common.headers(), body)
  end
end

-- wrk's `setup`: gives each thread its number (1, 2, …) as the global `thread_number`.
function common.number_threads()
  local next_thread = 0
  return function(thread)
    next_thread = next_thread + 1
    thread:set("thread_number", next_thread)
  end
end

return common
