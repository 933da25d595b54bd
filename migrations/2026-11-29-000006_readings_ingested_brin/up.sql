-- A BRIN index on when readings were stored. Detector state is saved every few seconds, not with
-- every batch; on load the detector replays the readings stored after a customer's saved state,
-- and those are the last seconds of ingestion before its previous owner stopped. Readings are
-- appended in ingestion order, so this index finds them by reading a few block ranges, at almost
-- no cost per insert (a b-tree would cost as much as the state writes it saves).
CREATE INDEX readings_ingested_at_brin ON readings USING brin (ingested_at);
