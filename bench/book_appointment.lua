package.path = "bench/?.lua;" .. package.path
local common = require("common")
local patients = common.read_lines(os.getenv("HC_PATIENTS"))
local practitioners = common.read_lines(os.getenv("HC_PRACTITIONERS"))

-- Every request books a slot no other request uses (`common.bookings`).
setup = common.number_threads()
request = common.bookings(patients, practitioners)
