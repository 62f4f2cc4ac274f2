-- The shape of create-patient at the database: one transaction, three single-row inserts
-- (the row, its event, its audit record). Run by scripts/bench with pgbench.
BEGIN;
INSERT INTO bench_rows (id, payload) VALUES (gen_random_uuid(), 'row payload of about the size of a patient');
INSERT INTO bench_events (id, payload) VALUES (gen_random_uuid(), 'event payload');
INSERT INTO bench_audit (id, payload) VALUES (gen_random_uuid(), 'audit payload');
COMMIT;
