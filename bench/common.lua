-- Shared by the wrk scripts: the bearer token and fixture ids come from the environment that
-- scripts/bench sets; each wrk thread gets its own number for generating distinct data.
local common = {}

common.token = os.getenv("HC_TOKEN")

function common.read_lines(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  return lines
end

-- A function that returns the lines of the file at `path` one after another, round and round.
function common.cycle(path)
  local lines = common.read_lines(path)
  local i = 0
  return function()
    i = i + 1
    return lines[(i % #lines) + 1]
  end
end

function common.headers(extra)
  local headers = { ["Authorization"] = "Bearer " .. common.token, ["Content-Type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return headers
end

return common
