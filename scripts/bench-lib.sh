# Shared by the benchmark scripts (sourced after services.sh): starting a release server, signing
# in, fetching fixture ids, and reading wrk's report.

# Waits until the server at $HEALTHCORE_BIND is ready (at most ten seconds).
wait_until_ready() {
  for _ in $(seq 1 50); do curl -sf "http://$HEALTHCORE_BIND/health/ready" >/dev/null && return; sleep 0.2; done
  echo "the server on $HEALTHCORE_BIND did not become ready" >&2
  return 1
}

# Prints a bearer token for the admin ($HEALTHCORE_ADMIN_PASSWORD).
admin_token() {
  curl -sf "http://$HEALTHCORE_BIND/api/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$HEALTHCORE_ADMIN_PASSWORD\"}" | jq -r .access_token
}

# Writes up to 2,000 patient ids to $HC_PATIENTS and 100 practitioner ids to $HC_PRACTITIONERS.
fetch_fixture_ids() {
  for offset in $(seq 0 100 1900); do
    curl -sf "http://$HEALTHCORE_BIND/api/v1/patients?limit=100&offset=$offset" -H "authorization: Bearer $HC_TOKEN" | jq -r '.items[].id'
  done >"$HC_PATIENTS"
  curl -sf "http://$HEALTHCORE_BIND/api/v1/practitioners?limit=100" -H "authorization: Bearer $HC_TOKEN" |
    jq -r '.items[].id' >"$HC_PRACTITIONERS"
}

# wrk's --latency report on stdin → "requests/s p50_ms p99_ms non2xx"
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad + 0 }'
}

# CPU time used so far, in clock ticks, by the processes whose ids are given.
cpu_of_pids() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# CPU time used so far, in clock ticks, by every process named $1 (postgres).
cpu_of_command() {
  # shellcheck disable=SC2046
  cpu_of_pids $(pgrep -x "$1")
}

# CPU time used so far by the whole machine (all cores), in clock ticks.
cpu_of_machine() {
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# The PostgreSQL server at admin URL $1 as a benchmark's summary names it: its version, and whether
# autovacuum runs (a machine set up for CI may turn it off). Without it nothing marks the rows
# written during a run visible to all, and counts read every one of them from the table.
postgres_server() {
  psql -tA "$1" -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ' (autovacuum ' || current_setting('autovacuum') || ')'"
}
