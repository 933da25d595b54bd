-- Alert episodes that activate (SPEC section 5): an episode pages a person only once it has
-- lasted its kind's `alerts.sustain_ms.*` while the customer was not muted. `activated_at` is
-- the time of the counting reading that activated it (null until then); an episode that resolved
-- without activating says why in `suppressed`: `short` (it never lasted its sustain) or `muted`.
-- Episodes stored before this migration keep both null: whether they would have activated was
-- never judged.
ALTER TABLE alerts
    ADD COLUMN activated_at timestamptz,
    ADD COLUMN suppressed text CHECK (suppressed IN ('short', 'muted'));
