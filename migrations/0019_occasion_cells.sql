-- Purchase occasions counted per local day, kept with the occasions
-- (issue 4).  The repurchase, revenue-mix and sales-decomposition answers
-- read these instead of a period's occasions (3M rows for a year of a
-- 10M-order shop).  What a bucket [lo, hi] of local days needs:
--
--   occasions, orders, net, first occasions, days since the previous one
--       per day: occasion_days
--   customers active in it          = occasions in it - pairs in it
--   of them returning               = later occasions - pairs + pairs ending in an n = 2
--   of them with >= 2 in it         = pairs in it - triples in it
--   a cohort's repurchase in N days = pairs ending in an n = 2 starting in the cohort,
--                                     at most N days long
--
-- where a pair is an occasion with its predecessor (start = the
-- predecessor's day, end = its own), a triple an occasion with the one two
-- before, and "in it" means lo <= start and end <= hi (0008 explains the
-- arithmetic).  Counting pairs inside a range is a two-dimensional range
-- count: occasion_pairs holds them per (start, end) day, and
-- occasion_pair_blocks per (start day, 32-day block of the end), so a year
-- reads the blocks whole and only its last partial block day by day.
--
-- Kept as rfm_cells are (0018): row triggers on purchase_occasions append
-- one delta per occasion written or removed, the janitor folds them in once
-- a minute, readers add both; days are local, so a zone change rebuilds the
-- shop's cells under the same advisory lock.  Erased customers stay: their
-- history counts in the metrics.

CREATE TABLE occasion_days (
    shop_id   uuid NOT NULL REFERENCES shops (id),
    day       date NOT NULL,
    first     boolean NOT NULL,  -- n = 1
    -- no CHECKs: the fold's upsert checks its proposed row (0018)
    occasions bigint NOT NULL,
    orders    bigint NOT NULL,
    net       bigint NOT NULL,
    gap_days  bigint NOT NULL,   -- sum of days since each occasion's predecessor
    PRIMARY KEY (shop_id, day, first)
);
COMMENT ON TABLE occasion_days IS 'Purchase occasions per (shop, local day, first or later), less the deltas not yet folded in';

CREATE TABLE occasion_pairs (
    shop_id   uuid NOT NULL REFERENCES shops (id),
    end_day   date NOT NULL,
    start_day date NOT NULL,
    seconds   bigint NOT NULL,   -- occasions n = 2 on end_day whose predecessor is on start_day
    laters    bigint NOT NULL,   -- the same for n >= 3
    triples   bigint NOT NULL,   -- occasions n >= 3 on end_day whose predecessor's predecessor is on start_day
    PRIMARY KEY (shop_id, end_day, start_day)
);
-- a cohort's second purchases by their first day (the N-day repurchase)
CREATE INDEX occasion_pairs_seconds ON occasion_pairs (shop_id, start_day, end_day)
    INCLUDE (seconds) WHERE seconds <> 0;
COMMENT ON TABLE occasion_pairs IS 'Occasions with their predecessor (and the one before) per (shop, local day of each), less the deltas not yet folded in';

CREATE TABLE occasion_pair_blocks (
    shop_id   uuid NOT NULL REFERENCES shops (id),
    start_day date NOT NULL,
    end_block integer NOT NULL,  -- occasion_block(end_day)
    seconds   bigint NOT NULL,
    laters    bigint NOT NULL,
    triples   bigint NOT NULL,
    PRIMARY KEY (shop_id, start_day, end_block)
);
COMMENT ON TABLE occasion_pair_blocks IS 'occasion_pairs summed over 32-day blocks of end_day';

-- One row per occasion written (+1) or removed (-1).  No foreign key, as
-- in facts_cell_deltas.
CREATE TABLE occasion_deltas (
    shop_id   uuid NOT NULL,
    day       date NOT NULL,
    n         smallint NOT NULL,  -- least(n, 3)
    prev_day  date,
    prev2_day date,
    occasions bigint NOT NULL,
    orders    bigint NOT NULL,
    net       bigint NOT NULL
);
CREATE INDEX occasion_deltas_shop ON occasion_deltas (shop_id);
COMMENT ON TABLE occasion_deltas IS 'Changes to occasion_days, occasion_pairs and occasion_pair_blocks not yet folded in by occasion_cells_compact()';

-- 32-day blocks counted from 1970-01-01 (floor: days before it too).
-- Block b holds the days 1970-01-01 + 32b .. + 32b + 31.
CREATE FUNCTION occasion_block(d date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT floor((d - date '1970-01-01') / 32.0)::integer
$$;

-- Row-level with plain parameters, as facts_cells_track (0018).
CREATE FUNCTION occasion_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.shop_id ELSE NEW.shop_id END;
    zone text;
BEGIN
    -- the lock first, its own statement: the next sees a zone change
    -- committed while we waited
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    SELECT s.timezone INTO zone FROM shops s WHERE s.id = shop;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO occasion_deltas
        VALUES (OLD.shop_id, (OLD.started_at AT TIME ZONE zone)::date, least(OLD.n, 3),
                (OLD.prev_started_at AT TIME ZONE zone)::date,
                (OLD.prev2_started_at AT TIME ZONE zone)::date, -1, -OLD.orders, -OLD.net);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO occasion_deltas
        VALUES (NEW.shop_id, (NEW.started_at AT TIME ZONE zone)::date, least(NEW.n, 3),
                (NEW.prev_started_at AT TIME ZONE zone)::date,
                (NEW.prev2_started_at AT TIME ZONE zone)::date, 1, NEW.orders, NEW.net);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER purchase_occasions_cells AFTER INSERT OR UPDATE OR DELETE ON purchase_occasions
    FOR EACH ROW EXECUTE FUNCTION occasion_cells_track();

-- A shop's occasions as deltas-shaped rows (one per occasion): the
-- source of the computations below.
CREATE FUNCTION occasion_rows(p_shop uuid)
RETURNS TABLE (day date, n smallint, prev_day date, prev2_day date, occasions bigint,
               orders bigint, net bigint)
LANGUAGE sql STABLE AS $$
    SELECT (o.started_at AT TIME ZONE s.timezone)::date, least(o.n, 3)::smallint,
           (o.prev_started_at AT TIME ZONE s.timezone)::date,
           (o.prev2_started_at AT TIME ZONE s.timezone)::date, 1::bigint, o.orders::bigint, o.net
      FROM purchase_occasions o JOIN shops s ON s.id = o.shop_id
     WHERE o.shop_id = p_shop
$$;

-- The cells as recomputed from the occasions: the rebuild's source and
-- verify's reference.
CREATE FUNCTION occasion_days_compute(p_shop uuid)
RETURNS TABLE (day date, first boolean, occasions bigint, orders bigint, net bigint,
               gap_days bigint)
LANGUAGE sql STABLE AS $$
    SELECT r.day, r.n = 1, sum(r.occasions)::bigint, sum(r.orders)::bigint, sum(r.net)::bigint,
           coalesce(sum(r.occasions * (r.day - r.prev_day)), 0)::bigint
      FROM occasion_rows(p_shop) r GROUP BY 1, 2
$$;

CREATE FUNCTION occasion_pairs_compute(p_shop uuid)
RETURNS TABLE (start_day date, end_day date, seconds bigint, laters bigint, triples bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.s, x.e, sum(x.seconds)::bigint, sum(x.laters)::bigint, sum(x.triples)::bigint
      FROM (SELECT r.prev_day AS s, r.day AS e,
                   CASE WHEN r.n = 2 THEN r.occasions ELSE 0 END AS seconds,
                   CASE WHEN r.n = 3 THEN r.occasions ELSE 0 END AS laters, 0 AS triples
              FROM occasion_rows(p_shop) r WHERE r.n >= 2
            UNION ALL
            SELECT r.prev2_day, r.day, 0, 0, r.occasions
              FROM occasion_rows(p_shop) r WHERE r.n = 3) x
     GROUP BY 1, 2
$$;

-- The cells as stored: folded cells plus pending deltas.
CREATE FUNCTION occasion_days_stored(p_shop uuid)
RETURNS TABLE (day date, first boolean, occasions bigint, orders bigint, net bigint,
               gap_days bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.day, x.first, sum(x.occasions)::bigint, sum(x.orders)::bigint, sum(x.net)::bigint,
           sum(x.gap_days)::bigint
      FROM (SELECT c.day, c.first, c.occasions, c.orders, c.net, c.gap_days
              FROM occasion_days c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.day, d.n = 1, d.occasions, d.orders, d.net,
                   coalesce(d.occasions * (d.day - d.prev_day), 0)
              FROM occasion_deltas d WHERE d.shop_id = p_shop) x
     GROUP BY 1, 2
    HAVING sum(x.occasions) <> 0 OR sum(x.orders) <> 0 OR sum(x.net) <> 0 OR sum(x.gap_days) <> 0
$$;

CREATE FUNCTION occasion_pairs_stored(p_shop uuid)
RETURNS TABLE (start_day date, end_day date, seconds bigint, laters bigint, triples bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.s, x.e, sum(x.seconds)::bigint, sum(x.laters)::bigint, sum(x.triples)::bigint
      FROM (SELECT c.start_day AS s, c.end_day AS e, c.seconds, c.laters, c.triples
              FROM occasion_pairs c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.prev_day, d.day, CASE WHEN d.n = 2 THEN d.occasions ELSE 0 END,
                   CASE WHEN d.n = 3 THEN d.occasions ELSE 0 END, 0
              FROM occasion_deltas d WHERE d.shop_id = p_shop AND d.n >= 2
            UNION ALL
            SELECT d.prev2_day, d.day, 0, 0, d.occasions
              FROM occasion_deltas d WHERE d.shop_id = p_shop AND d.n = 3) x
     GROUP BY 1, 2
    HAVING sum(x.seconds) <> 0 OR sum(x.laters) <> 0 OR sum(x.triples) <> 0
$$;

CREATE FUNCTION occasion_blocks_stored(p_shop uuid)
RETURNS TABLE (start_day date, end_block integer, seconds bigint, laters bigint, triples bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.s, x.b, sum(x.seconds)::bigint, sum(x.laters)::bigint, sum(x.triples)::bigint
      FROM (SELECT c.start_day AS s, c.end_block AS b, c.seconds, c.laters, c.triples
              FROM occasion_pair_blocks c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.prev_day, occasion_block(d.day), CASE WHEN d.n = 2 THEN d.occasions ELSE 0 END,
                   CASE WHEN d.n = 3 THEN d.occasions ELSE 0 END, 0
              FROM occasion_deltas d WHERE d.shop_id = p_shop AND d.n >= 2
            UNION ALL
            SELECT d.prev2_day, occasion_block(d.day), 0, 0, d.occasions
              FROM occasion_deltas d WHERE d.shop_id = p_shop AND d.n = 3) x
     GROUP BY 1, 2
    HAVING sum(x.seconds) <> 0 OR sum(x.laters) <> 0 OR sum(x.triples) <> 0
$$;

-- Every cell of the shop from its occasions, in the current zone.
CREATE FUNCTION occasion_cells_rebuild(p_shop uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM facts_cells_lock(p_shop, true);
    DELETE FROM occasion_deltas WHERE shop_id = p_shop;
    DELETE FROM occasion_days WHERE shop_id = p_shop;
    DELETE FROM occasion_pairs WHERE shop_id = p_shop;
    DELETE FROM occasion_pair_blocks WHERE shop_id = p_shop;
    INSERT INTO occasion_days (shop_id, day, first, occasions, orders, net, gap_days)
    SELECT p_shop, c.* FROM occasion_days_compute(p_shop) c;
    INSERT INTO occasion_pairs (shop_id, start_day, end_day, seconds, laters, triples)
    SELECT p_shop, c.* FROM occasion_pairs_compute(p_shop) c;
    INSERT INTO occasion_pair_blocks (shop_id, start_day, end_block, seconds, laters, triples)
    SELECT p_shop, p.start_day, occasion_block(p.end_day), sum(p.seconds), sum(p.laters),
           sum(p.triples)
      FROM occasion_pairs p WHERE p.shop_id = p_shop GROUP BY 2, 3;
END
$$;

CREATE FUNCTION shops_occasion_cells_zone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM occasion_cells_rebuild(NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER shops_occasion_cells_zone AFTER UPDATE OF timezone ON shops
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION shops_occasion_cells_zone();

-- Fold every shop's deltas into its cells; returns the number folded.
CREATE FUNCTION occasion_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop   uuid;
    folded bigint := 0;
    n      bigint;
BEGIN
    FOR shop IN SELECT DISTINCT d.shop_id FROM occasion_deltas d ORDER BY 1 LOOP
        PERFORM facts_cells_lock(shop, false);
        CREATE TEMP TABLE occasion_fold ON COMMIT DROP AS
        WITH gone AS (DELETE FROM occasion_deltas d WHERE d.shop_id = shop RETURNING d.*)
        SELECT * FROM gone;
        GET DIAGNOSTICS n = ROW_COUNT;
        folded := folded + n;
        INSERT INTO occasion_days AS c (shop_id, day, first, occasions, orders, net, gap_days)
        SELECT shop, g.day, g.n = 1, sum(g.occasions), sum(g.orders), sum(g.net),
               coalesce(sum(g.occasions * (g.day - g.prev_day)), 0)
          FROM occasion_fold g GROUP BY g.day, g.n = 1
        ON CONFLICT (shop_id, day, first) DO UPDATE
           SET occasions = c.occasions + excluded.occasions, orders = c.orders + excluded.orders,
               net = c.net + excluded.net, gap_days = c.gap_days + excluded.gap_days;
        CREATE TEMP TABLE occasion_fold_pairs ON COMMIT DROP AS
        SELECT x.s AS start_day, x.e AS end_day, sum(x.seconds) AS seconds,
               sum(x.laters) AS laters, sum(x.triples) AS triples
          FROM (SELECT g.prev_day AS s, g.day AS e,
                       CASE WHEN g.n = 2 THEN g.occasions ELSE 0 END AS seconds,
                       CASE WHEN g.n = 3 THEN g.occasions ELSE 0 END AS laters, 0 AS triples
                  FROM occasion_fold g WHERE g.n >= 2
                UNION ALL
                SELECT g.prev2_day, g.day, 0, 0, g.occasions FROM occasion_fold g WHERE g.n = 3) x
         GROUP BY 1, 2;
        INSERT INTO occasion_pairs AS c (shop_id, start_day, end_day, seconds, laters, triples)
        SELECT shop, p.start_day, p.end_day, p.seconds, p.laters, p.triples
          FROM occasion_fold_pairs p
         WHERE p.seconds <> 0 OR p.laters <> 0 OR p.triples <> 0
        ON CONFLICT (shop_id, end_day, start_day) DO UPDATE
           SET seconds = c.seconds + excluded.seconds, laters = c.laters + excluded.laters,
               triples = c.triples + excluded.triples;
        INSERT INTO occasion_pair_blocks AS c (shop_id, start_day, end_block, seconds, laters,
            triples)
        SELECT shop, p.start_day, occasion_block(p.end_day), sum(p.seconds), sum(p.laters),
               sum(p.triples)
          FROM occasion_fold_pairs p GROUP BY 2, 3
        HAVING sum(p.seconds) <> 0 OR sum(p.laters) <> 0 OR sum(p.triples) <> 0
        ON CONFLICT (shop_id, start_day, end_block) DO UPDATE
           SET seconds = c.seconds + excluded.seconds, laters = c.laters + excluded.laters,
               triples = c.triples + excluded.triples;
        DELETE FROM occasion_days c WHERE c.shop_id = shop
           AND (c.day, c.first) IN (SELECT g.day, g.n = 1 FROM occasion_fold g)
           AND c.occasions = 0 AND c.orders = 0 AND c.net = 0 AND c.gap_days = 0;
        DELETE FROM occasion_pairs c USING occasion_fold_pairs p
         WHERE c.shop_id = shop AND c.end_day = p.end_day AND c.start_day = p.start_day
           AND c.seconds = 0 AND c.laters = 0 AND c.triples = 0;
        DELETE FROM occasion_pair_blocks c USING occasion_fold_pairs p
         WHERE c.shop_id = shop AND c.start_day = p.start_day
           AND c.end_block = occasion_block(p.end_day)
           AND c.seconds = 0 AND c.laters = 0 AND c.triples = 0;
        DROP TABLE occasion_fold;
        DROP TABLE occasion_fold_pairs;
    END LOOP;
    RETURN folded;
END
$$;

-- Verify: stored cells against the recomputation from the occasions.
CREATE FUNCTION occasion_cells_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, 'occasion day differs from the occasions', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.day, b.day) || CASE WHEN coalesce(a.first, b.first)
                             THEN ' first' ELSE ' later' END
                           || ': stored ' || coalesce(a.occasions, 0) || '/' || coalesce(a.orders, 0)
                           || '/' || coalesce(a.net, 0) || '/' || coalesce(a.gap_days, 0)
                           || ', computed ' || coalesce(b.occasions, 0) || '/'
                           || coalesce(b.orders, 0) || '/' || coalesce(b.net, 0) || '/'
                           || coalesce(b.gap_days, 0) AS detail
                      FROM occasion_days_stored(s.id) a
                      FULL JOIN occasion_days_compute(s.id) b ON a.day = b.day AND a.first = b.first
                     WHERE (a.occasions, a.orders, a.net, a.gap_days)
                           IS DISTINCT FROM (b.occasions, b.orders, b.net, b.gap_days)) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT s.id, 'occasion pair differs from the occasions', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.start_day, b.start_day) || ' to '
                           || coalesce(a.end_day, b.end_day) || ': stored '
                           || coalesce(a.seconds, 0) || '/' || coalesce(a.laters, 0) || '/'
                           || coalesce(a.triples, 0) || ', computed ' || coalesce(b.seconds, 0)
                           || '/' || coalesce(b.laters, 0) || '/' || coalesce(b.triples, 0) AS detail
                      FROM occasion_pairs_stored(s.id) a
                      FULL JOIN occasion_pairs_compute(s.id) b
                        ON a.start_day = b.start_day AND a.end_day = b.end_day
                     WHERE (a.seconds, a.laters, a.triples)
                           IS DISTINCT FROM (b.seconds, b.laters, b.triples)) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT s.id, 'occasion pair block differs from the occasions', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.start_day, b.start_day) || ' to block '
                           || coalesce(a.end_block, b.end_block) || ': stored '
                           || coalesce(a.seconds, 0) || '/' || coalesce(a.laters, 0) || '/'
                           || coalesce(a.triples, 0) || ', computed ' || coalesce(b.seconds, 0)
                           || '/' || coalesce(b.laters, 0) || '/' || coalesce(b.triples, 0) AS detail
                      FROM occasion_blocks_stored(s.id) a
                      FULL JOIN (SELECT p.start_day, occasion_block(p.end_day) AS end_block,
                                        sum(p.seconds) AS seconds, sum(p.laters) AS laters,
                                        sum(p.triples) AS triples
                                   FROM occasion_pairs_compute(s.id) p GROUP BY 1, 2) b
                        ON a.start_day = b.start_day AND a.end_block = b.end_block
                     WHERE (a.seconds, a.laters, a.triples)
                           IS DISTINCT FROM (b.seconds, b.laters, b.triples)) d
     WHERE p_shop IS NULL OR s.id = p_shop
$$;

-- Existing shops.
SELECT occasion_cells_rebuild(s.id) FROM shops s;
