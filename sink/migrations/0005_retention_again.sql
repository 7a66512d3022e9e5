-- The retention TTLs of 0003 again, on the tables 0004 rebuilt (a table TTL belongs to
-- the engine clause, which the rebuild replaced). Column TTLs (audit_log.ip) came
-- along with the columns.
-- requires ClickHouse 21.8
ALTER TABLE jobs MODIFY TTL submitted_at + INTERVAL 2 YEAR;
ALTER TABLE stage_runs MODIFY TTL started_at + INTERVAL 90 DAY;
ALTER TABLE http_requests MODIFY TTL event_time + INTERVAL 90 DAY;
ALTER TABLE audit_log MODIFY TTL event_time + INTERVAL 90 DAY;
ALTER TABLE feedback MODIFY TTL event_time + INTERVAL 2 YEAR;
