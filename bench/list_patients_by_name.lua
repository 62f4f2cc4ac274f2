package.path = "bench/?.lua;" .. package.path
local common = require("common")
-- Three-letter name prefixes that occur in the database (HC_PREFIXES), one after another.
local next_prefix = common.cycle(os.getenv("HC_PREFIXES"))
request = function()
  return wrk.format("GET", "/api/v1/patients?limit=20&name=" .. next_prefix(), common.headers())
end
