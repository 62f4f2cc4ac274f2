#!/usr/bin/env python3
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the compact definitions below.

Dashboards as code: edit this file, run `python3 scripts/dashboards.py`, commit both. The test suite
(tests/api/dashboards.rs) checks the JSON it writes and runs every panel query against a real
Prometheus scraping a real HealthCore.

Every query filters on the `$instance` variable and uses `$__rate_interval`; every panel has a
unit and a description. A description containing "Empty while" marks a query that returns series
only when something goes wrong (errors, failures).
"""
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
I = 'instance=~"$instance"'
R = "$__rate_interval"


def recorded(name):
    """A per-instance 5-minute rate the rules record (deploy/prometheus/rules/healthcore.yml,
    group healthcore-dashboard-recording), averaged over the panel's interval: a 30-day range reads
    a few recorded series per step instead of every bucket of every route, table and instance."""
    return f'avg_over_time({name}{{{I}}}[{R}])'


def panel(title, description, unit, *targets, kind="timeseries", legend=None):
    return {"title": title, "description": description, "unit": unit, "kind": kind,
            "targets": [t if isinstance(t, tuple) else (t, legend or "") for t in targets]}


DASHBOARDS = {
    "healthcore-overview": ("HealthCore — Application overview", "Traffic, errors, latency and domain activity at a glance.", [
        panel("Request rate", "API requests per second, by status class.", "reqps",
              (f'sum by (status) (rate(healthcore_http_requests_total{{{I}}}[{R}]))', "{{status}}")),
        panel("Error ratio (5xx)", "Share of requests answered with a 5xx. Empty while there are no errors.", "percentunit",
              f'sum(rate(healthcore_http_requests_total{{{I},status=~"5.."}}[{R}])) / sum(rate(healthcore_http_requests_total{{{I}}}[{R}]))'),
        panel("Latency p50 / p99", "Request duration percentiles over all routes (the ADR's api_request_duration_seconds).", "s",
              (f'histogram_quantile(0.5, sum by (le) ({recorded("healthcore:api_request_duration_seconds_bucket:rate5m")}))', "p50"),
              (f'histogram_quantile(0.99, sum by (le) ({recorded("healthcore:api_request_duration_seconds_bucket:rate5m")}))', "p99")),
        panel("Requests in flight", "Requests being served right now.", "short",
              f'sum(healthcore_http_requests_in_flight{{{I}}})'),
        panel("Patients registered", "Patients created per minute (the ADR's patients_created_total).", "short",
              f'sum(increase(healthcore_patients_created_total{{{I}}}[{R}]))'),
        panel("Appointments", "Appointments booked, cancelled, completed and marked no-show per interval.", "short",
              (f'sum(increase(healthcore_appointments_booked_total{{{I}}}[{R}]))', "booked"),
              (f'sum(increase(healthcore_appointments_cancelled_total{{{I}}}[{R}]))', "cancelled"),
              (f'sum(increase(healthcore_appointments_completed_total{{{I}}}[{R}]))', "completed"),
              (f'sum(increase(healthcore_appointments_no_show_total{{{I}}}[{R}]))', "no-show")),
        panel("Sign-ins", "Sign-in attempts by outcome (throttled: refused during a lockout; busy: shed while every hashing slot was taken).", "short",
              (f'sum by (outcome) (increase(healthcore_logins_total{{{I}}}[{R}]))', "{{outcome}}")),
        panel("Sign-in lockouts", "Lockouts started by repeated failed sign-ins, per account name or client address. Empty while there are none.", "short",
              (f'sum by (scope) (increase(healthcore_login_lockouts_total{{{I}}}[{R}]))', "{{scope}}")),
        panel("SLO error ratio (1 h, 6 h)", "The availability SLO's error ratio over the long windows of its burn-rate alerts (recording rules; the fast alert fires above 1.44 % over 1 h, the slow one above 0.6 % over 6 h). Empty while there are no errors.", "percentunit",
              ("healthcore:api_error_ratio:rate1h", "1 h"), ("healthcore:api_error_ratio:rate6h", "6 h")),
        panel("SLO slow ratio (1 h, 6 h)", "The latency SLO's share of requests slower than 256 ms over the long windows of its burn-rate alerts (recording rules; the fast alert fires above 14.4 % over 1 h, the slow one above 6 % over 6 h).", "percentunit",
              ("healthcore:api_slow_ratio:rate1h", "1 h"), ("healthcore:api_slow_ratio:rate6h", "6 h")),
    ]),
    "healthcore-database": ("HealthCore — Database performance", "Statements, their duration and errors, the pool, the reference-data caches and the audit writer.", [
        panel("Statements per second", "Database statements by operation.", "ops",
              (f'sum by (operation) (rate(healthcore_db_query_duration_seconds_count{{{I}}}[{R}]))', "{{operation}}")),
        panel("Statement p99 by table", "99th percentile statement duration per table.", "s",
              (f'histogram_quantile(0.99, sum by (le, table) ({recorded("healthcore:db_query_duration_seconds_bucket_by_table:rate5m")}))', "{{table}}")),
        panel("Statement errors", "Failed statements by operation and table. Empty while there are no errors.", "ops",
              (f'sum by (operation, table) (rate(healthcore_db_query_errors_total{{{I}}}[{R}]))', "{{operation}} {{table}}")),
        panel("Pool connections", "Connections in use and idle against the pool's limit.", "short",
              (f'sum(healthcore_db_pool_connections_in_use{{{I}}})', "in use"),
              (f'sum(healthcore_db_pool_connections_idle{{{I}}})', "idle"),
              (f'sum(healthcore_db_pool_connections_max{{{I}}})', "max")),
        panel("Write transaction wait p99", "Time a write waited for a pool connection (on SQLite also the single writer's turn) and its BEGIN; rising while the pool is saturated.", "s",
              f'histogram_quantile(0.99, sum by (le) (rate(healthcore_db_pool_acquire_duration_seconds_bucket{{{I}}}[{R}])))'),
        panel("Interrupted round trips", "Round trips that ended without their whole answer (a deadline, a client gone, a lost connection) and write transactions dropped unfinished; each has the next 10 s of connection releases pinged before reuse. Zero in normal operation: a steady rate means clients giving up mid-request or a database that stops answering.", "ops",
              f'sum(rate(healthcore_db_interruptions_total{{{I}}}[{R}]))'),
        panel("Cache hit ratio", "Share of practitioner and user lookups served from the in-memory cache.", "percentunit",
              (f'sum by (cache) (rate(healthcore_cache_requests_total{{{I},outcome="hit"}}[{R}])) / sum by (cache) (rate(healthcore_cache_requests_total{{{I}}}[{R}]))', "{{cache}}")),
        panel("Cache lookups", "Cache lookups per second by cache and outcome (hit, miss).", "ops",
              (f'sum by (cache, outcome) (rate(healthcore_cache_requests_total{{{I}}}[{R}]))', "{{cache}} {{outcome}}")),
        panel("Cache evictions", "Entries leaving a cache by cause: expired (TTL), size, explicit (invalidated by a write), replaced.", "short",
              (f'sum by (cache, cause) (increase(healthcore_cache_evictions_total{{{I}}}[{R}]))', "{{cache}} {{cause}}")),
        panel("Audit group commit", "Read-audit records committed per second by the group-commit writer.", "short",
              f'sum(rate(healthcore_audit_group_commit_records_total{{{I}}}[{R}]))'),
        panel("Audit batch size p95", "Records per group commit (95th percentile).", "short",
              f'histogram_quantile(0.95, sum by (le) (rate(healthcore_audit_group_commit_batch_size_bucket{{{I}}}[{R}])))'),
        panel("Audit commit duration p99", "Time to commit one group of audit records.", "s",
              f'histogram_quantile(0.99, sum by (le) (rate(healthcore_audit_group_commit_duration_seconds_bucket{{{I}}}[{R}])))'),
    ]),
    "healthcore-endpoints": ("HealthCore — API endpoint performance", "Per-route traffic, latency, status codes and sizes.", [
        panel("Requests by route", "Requests per second per route template.", "reqps",
              (f'sum by (method, route) (rate(healthcore_http_requests_total{{{I}}}[{R}]))', "{{method}} {{route}}")),
        panel("p99 by route", "99th percentile duration per route template.", "s",
              (f'histogram_quantile(0.99, sum by (le, method, route) ({recorded("healthcore:http_request_duration_seconds_bucket_by_route:rate5m")}))', "{{method}} {{route}}")),
        panel("Statuses by route", "Responses per second by route and status code.", "reqps",
              (f'sum by (route, status) (rate(healthcore_http_requests_total{{{I}}}[{R}]))', "{{route}} {{status}}")),
        panel("Request body size p95", "95th percentile request body size per route.", "bytes",
              (f'histogram_quantile(0.95, sum by (le, route) (rate(healthcore_http_request_size_bytes_bucket{{{I}}}[{R}])))', "{{route}}")),
        panel("Response body size p95", "95th percentile response body size per route.", "bytes",
              (f'histogram_quantile(0.95, sum by (le, route) (rate(healthcore_http_response_size_bytes_bucket{{{I}}}[{R}])))', "{{route}}")),
        panel("Open connections", "Client connections open per instance (capped by HEALTHCORE_HTTP_MAX_CONNECTIONS).", "short",
              (f'sum by (instance) (healthcore_http_connections{{{I}}})', "{{instance}}")),
        panel("Connections refused", "Connections answered 503 because the cap was reached, per second.", "ops",
              (f'sum by (instance) (rate(healthcore_http_connections_refused_total{{{I}}}[{R}]))', "{{instance}}")),
        panel("Connections timed out", "Connections closed for a request head sent too slowly (header) or nothing sent (idle). Empty while none timed out.", "ops",
              (f'sum by (phase) (rate(healthcore_http_connection_timeouts_total{{{I}}}[{R}]))', "{{phase}}")),
        panel("Malformed requests", "Requests the HTTP parser refused before routing, by status. Empty while there are none.", "ops",
              (f'sum by (status) (rate(healthcore_http_malformed_requests_total{{{I}}}[{R}]))', "{{status}}")),
    ]),
    "healthcore-jobs": ("HealthCore — Background jobs", "The scheduled jobs (the ADR's Celery task monitoring): runs, failures, duration, freshness.", [
        panel("Runs by outcome", "Job attempts per interval by job and outcome.", "short",
              (f'sum by (job_name, outcome) (increase(healthcore_job_runs_total{{{I}}}[{R}]))', "{{job_name}} {{outcome}}")),
        panel("Failed runs", "Runs that failed all attempts. Empty while there are no failures.", "short",
              (f'sum by (job_name) (increase(healthcore_job_runs_total{{{I},outcome="failed"}}[{R}]))', "{{job_name}}")),
        panel("Duration p95", "95th percentile duration of one attempt, by job.", "s",
              (f'histogram_quantile(0.95, sum by (le, job_name) (rate(healthcore_job_duration_seconds_bucket{{{I}}}[{R}])))', "{{job_name}}")),
        panel("Time since last success", "Seconds since each job last succeeded on any instance.", "s",
              (f'time() - max by (job_name) (healthcore_job_last_success_timestamp_seconds{{{I}}})', "{{job_name}}")),
    ]),
    "healthcore-system": ("HealthCore — System health overview", "Processes: up, CPU, memory, file descriptors, uptime, build.", [
        panel("Targets up", "1 when Prometheus reaches the process.", "short",
              (f'up{{job=~"healthcore-.*",{I}}}', "{{job}} {{instance}}")),
        panel("CPU", "CPU seconds used per second, per process.", "percentunit",
              (f'rate(healthcore_process_cpu_seconds_total{{{I}}}[{R}])', "{{instance}}")),
        panel("Resident memory", "Resident memory per process.", "bytes",
              (f'healthcore_process_resident_memory_bytes{{{I}}}', "{{instance}}")),
        panel("Open file descriptors", "Open file descriptors per process.", "short",
              (f'healthcore_process_open_fds{{{I}}}', "{{instance}}")),
        panel("Uptime", "Seconds since each process started.", "s",
              (f'time() - healthcore_process_start_time_seconds{{{I}}}', "{{instance}}")),
        panel("Log lines dropped", "Lines the log file writer dropped rather than make requests wait (always 0 without a log file).", "short",
              (f'increase(healthcore_log_lines_dropped_total{{{I}}}[{R}])', "{{instance}}")),
        panel("Build", "The running version and revision of each process.", "short",
              (f'healthcore_build_info{{{I}}}', "{{version}} {{revision}}")),
    ]),
    "healthcore-events": ("HealthCore — Event streaming", "Outbox, relay, consumers, dead letters and webhooks.", [
        panel("Events written", "Events committed to the outbox per second, by type.", "ops",
              (f'sum by (event_type) (rate(healthcore_outbox_events_written_total{{{I}}}[{R}]))', "{{event_type}}")),
        panel("Events published", "Events the relay sent per second, by topic and outcome.", "ops",
              (f'sum by (topic, outcome) (rate(healthcore_events_published_total{{{I}}}[{R}]))', "{{topic}} {{outcome}}")),
        panel("Outbox backlog", "Unpublished events, as the leading relay last counted them.", "short",
              f'max(healthcore_outbox_pending_events{{{I}}})'),
        panel("Oldest pending event", "Age of the oldest unpublished event (alert above 5 minutes).", "s",
              f'max(healthcore_outbox_oldest_pending_age_seconds{{{I}}})'),
        panel("Relay leader", "Processes whose relay currently publishes (should be exactly 1).", "short",
              f'sum(healthcore_relay_leader{{{I}}})'),
        panel("Record → delivery p99", "From an event's record time to the broker's acknowledgement (kafka) or its handling in-process, 99th percentile.", "s",
              (f'histogram_quantile(0.99, sum by (le, sink) (rate(healthcore_event_delivery_latency_seconds_bucket{{{I}}}[{R}])))', "{{sink}}")),
        panel("Producer queue", "Messages handed to the Kafka producer and not yet acknowledged.", "short",
              f'sum(healthcore_producer_queue_messages{{{I}}})'),
        panel("Consumer handling p99", "Time to handle one event (effect and inbox in one transaction), by group.", "s",
              (f'histogram_quantile(0.99, sum by (le, group) (rate(healthcore_consumer_handling_duration_seconds_bucket{{{I}}}[{R}])))', "{{group}}")),
        panel("Consumer lag", "Messages each Kafka consumer group is behind, summed over partitions (alert above 1,000). Empty while events are delivered in-process.", "short",
              (f'sum by (group) (healthcore_consumer_lag_messages{{{I}}})', "{{group}}")),
        panel("Consumer throughput", "Events handled per second by group and outcome.", "ops",
              (f'sum by (group, outcome) (rate(healthcore_consumer_events_total{{{I}}}[{R}]))', "{{group}} {{outcome}}")),
        panel("Dead letters", "Messages consumer groups gave up on. Empty while there are no failures.", "short",
              (f'sum by (group) (increase(healthcore_consumer_dead_letters_total{{{I}}}[{R}]))', "{{group}}")),
        panel("Webhook attempts", "Webhook attempts by target and outcome.", "short",
              (f'sum by (target, outcome) (increase(healthcore_webhook_deliveries_total{{{I}}}[{R}]))', "{{target}} {{outcome}}")),
    ]),
}


def dashboard(uid, title, description, panels):
    out = []
    for index, p in enumerate(panels):
        out.append({
            "id": index + 1,
            "type": p["kind"],
            "title": p["title"],
            "description": p["description"],
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                {"refId": chr(ord("A") + n), "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "expr": expr, "legendFormat": legend}
                for n, (expr, legend) in enumerate(p["targets"])
            ],
        })
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["healthcore"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
             "current": {"text": "Prometheus", "value": "healthcore-prometheus"}},
            {"name": "instance", "type": "query", "label": "Instance",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(healthcore_build_info, instance)", "refId": "instance"},
             "definition": "label_values(healthcore_build_info, instance)",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": out,
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for uid, (title, description, panels) in DASHBOARDS.items():
        path = OUT / f"{uid}.json"
        path.write_text(json.dumps(dashboard(uid, title, description, panels), indent=2) + "\n")
        print(f"wrote {path.relative_to(OUT.parent.parent.parent)}")


if __name__ == "__main__":
    main()
