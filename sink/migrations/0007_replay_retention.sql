-- Replays are an operator's evaluation, not the business record: deleted 90 days
-- after the replay. 18.16 has no table TTL; there the rows stay until erased or
-- dropped by hand, and the next `studio migrate` after an upgrade applies this.
-- requires ClickHouse 21.8
ALTER TABLE replay_results MODIFY TTL replayed_at + INTERVAL 90 DAY;
