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
-- Cohort retention needs each occasion's cohort: occasions now carry the
-- start of their customer's first (first_started_at, kept like prev_*), and
-- cohort_cells count them per (local day of the first, local day of the
-- occasion).
--
-- Kept as rfm_cells are (0018): row triggers on purchase_occasions append
-- one delta per occasion written or removed, the janitor folds them in once
-- a minute, readers add both; days are local, so a zone change rebuilds the
-- shop's cells under the same advisory lock.  Erased customers stay: their
-- history counts in the metrics.

ALTER TABLE purchase_occasions ADD COLUMN first_started_at timestamptz;
COMMENT ON COLUMN purchase_occasions.first_started_at IS 'started_at of occasion 1 of the customer';
UPDATE purchase_occasions po SET first_started_at = f.started_at
  FROM purchase_occasions f WHERE f.customer_seq = po.customer_seq AND f.n = 1;
ALTER TABLE purchase_occasions ALTER COLUMN first_started_at SET NOT NULL,
    ADD CONSTRAINT purchase_occasions_first CHECK (first_started_at <= started_at
        AND (n > 1 OR first_started_at = started_at));

-- The occasions of customer_facts_compute as rows, with their predecessors
-- and their first.
DROP FUNCTION purchase_occasions_rows(jsonb);
CREATE FUNCTION purchase_occasions_rows(p_occs jsonb)
RETURNS TABLE (n integer, started_at timestamptz, orders integer, net bigint,
               p1 timestamptz, p2 timestamptz, p0 timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT x.n, x.started_at, x.orders, x.net, lag(x.started_at) OVER w, lag(x.started_at, 2) OVER w,
           first_value(x.started_at) OVER w
      FROM (SELECT (e ->> 'n')::integer AS n, (e ->> 'started_at')::timestamptz AS started_at,
                   (e ->> 'orders')::integer AS orders, (e ->> 'net')::bigint AS net
              FROM jsonb_array_elements(p_occs) e) x
    WINDOW w AS (ORDER BY x.n)
$$;

-- Store the occasions of one customer, writing only rows that changed; a
-- row whose predecessors or first moved counts as changed.
CREATE OR REPLACE FUNCTION purchase_occasions_store(p_customer bigint, p_shop uuid, p_occs jsonb)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM purchase_occasions po WHERE po.customer_seq = p_customer
       AND NOT EXISTS (SELECT FROM purchase_occasions_rows(p_occs) e
                        WHERE e.n = po.n AND e.started_at = po.started_at
                          AND e.orders = po.orders AND e.net = po.net
                          AND e.p1 IS NOT DISTINCT FROM po.prev_started_at
                          AND e.p2 IS NOT DISTINCT FROM po.prev2_started_at
                          AND e.p0 = po.first_started_at);
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net,
        prev_started_at, prev2_started_at, first_started_at)
    SELECT p_customer, e.n, p_shop, e.started_at, e.orders, e.net, e.p1, e.p2, e.p0
      FROM purchase_occasions_rows(p_occs) e
    ON CONFLICT (customer_seq, n) DO NOTHING;
$$;

-- The stored form verify compares: a row whose prev or first columns do
-- not match its neighbours shows up as a difference.
CREATE OR REPLACE FUNCTION customer_facts_stored(p_customer bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'order_count', coalesce(f.order_count, 0), 'first_order_at', f.first_order_at,
        'second_order_at', f.second_order_at, 'last_order_at', f.last_order_at,
        'total_spent', coalesce(f.total_spent, 0), 'first_order_channel', f.first_order_channel,
        'first_order_categories', to_jsonb(coalesce(f.first_order_categories, '{}')),
        'first_order_roles', to_jsonb(coalesce(f.first_order_roles, '{}')),
        'categories', coalesce((SELECT jsonb_object_agg(cf.category, jsonb_build_object(
                'first_at', cf.first_at, 'second_at', cf.second_at,
                'occasion_count', cf.occasion_count))
            FROM customer_category_facts cf WHERE cf.customer_seq = p_customer), '{}'),
        'occasions', coalesce((SELECT jsonb_agg(jsonb_build_object('n', po.n,
                'started_at', po.started_at, 'orders', po.orders, 'net', po.net)
                || CASE WHEN po.prev_started_at IS NOT DISTINCT FROM po.p1
                         AND po.prev2_started_at IS NOT DISTINCT FROM po.p2
                         AND po.first_started_at = po.p0 THEN '{}'::jsonb
                        ELSE jsonb_build_object('prev_started_at', po.prev_started_at,
                                                'prev2_started_at', po.prev2_started_at,
                                                'first_started_at', po.first_started_at) END
                ORDER BY po.n)
            FROM (SELECT o.*, lag(o.started_at) OVER w AS p1, lag(o.started_at, 2) OVER w AS p2,
                         first_value(o.started_at) OVER w AS p0
                    FROM purchase_occasions o WHERE o.customer_seq = p_customer
                  WINDOW w AS (ORDER BY o.n)) po), '[]'))
    FROM (SELECT p_customer AS seq) k
    LEFT JOIN customer_facts f ON f.customer_seq = k.seq
$$;

-- The bulk refresh (0008) writes first_started_at too.
CREATE OR REPLACE FUNCTION customer_facts_refresh_many(p_customers bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    simple bigint[];
    c      bigint;
BEGIN
    -- the same per-customer lock as customer_facts_refresh, in a fixed order
    PERFORM 1 FROM customers WHERE seq = ANY (p_customers) ORDER BY seq FOR NO KEY UPDATE;
    SELECT coalesce(array_agg(cu.seq), '{}') INTO simple
      FROM customers cu JOIN shops s ON s.id = cu.shop_id
     WHERE cu.seq = ANY (p_customers)
       AND coalesce((s.settings #>> '{repurchase_rule,merge_window_hours}')::integer, 0) = 0;
    FOR c IN SELECT unnest(p_customers) EXCEPT SELECT unnest(simple) LOOP
        PERFORM customer_facts_refresh(c);
    END LOOP;

    DELETE FROM customer_category_facts WHERE customer_seq = ANY (simple);
    DELETE FROM customer_facts WHERE customer_seq = ANY (simple);
    DELETE FROM purchase_occasions WHERE customer_seq = ANY (simple);
    CREATE TEMP TABLE facts_q ON COMMIT DROP AS
    SELECT o.seq, o.customer_seq, cu.shop_id, o.placed_at, o.id, o.channel,
           o.total - o.refunded_amount AS net,
           row_number() OVER (PARTITION BY o.customer_seq ORDER BY o.placed_at, o.id) AS n,
           count(*) OVER (PARTITION BY o.customer_seq) AS cnt
      FROM orders o
      JOIN customers cu ON cu.seq = o.customer_seq
      JOIN shops s ON s.id = cu.shop_id
     WHERE o.customer_seq = ANY (simple) AND o.status = 'placed'
       AND o.total >= coalesce((s.settings #>> '{repurchase_rule,min_order_amount}')::bigint, 0)
       AND NOT (coalesce((s.settings #>> '{repurchase_rule,exclude_refunded}')::boolean, true)
                AND o.refunded_amount > 0 AND o.refunded_amount >= o.total);
    ANALYZE facts_q;

    INSERT INTO customer_facts (customer_seq, shop_id, order_count, first_order_at,
        second_order_at, last_order_at, total_spent, first_order_channel,
        first_order_categories, first_order_roles)
    SELECT g.customer_seq, g.shop_id, g.cnt, g.first_at, g.second_at, g.last_at, g.spent,
           g.first_channel,
           ARRAY(SELECT DISTINCT l.category FROM order_lines l WHERE l.order_seq = g.first_seq
                 ORDER BY 1),
           ARRAY(SELECT DISTINCT l.role FROM order_lines l WHERE l.order_seq = g.first_seq
                 ORDER BY 1)
      FROM (SELECT customer_seq, min(shop_id::text)::uuid AS shop_id, max(cnt)::integer AS cnt,
                   min(placed_at) FILTER (WHERE n = 1) AS first_at,
                   min(placed_at) FILTER (WHERE n = 2) AS second_at,
                   min(placed_at) FILTER (WHERE n = cnt) AS last_at,
                   sum(net)::bigint AS spent,
                   min(channel) FILTER (WHERE n = 1) AS first_channel,
                   min(seq) FILTER (WHERE n = 1) AS first_seq
              FROM facts_q GROUP BY customer_seq) g;

    -- each order is an occasion
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net,
        prev_started_at, prev2_started_at, first_started_at)
    SELECT customer_seq, n, shop_id, placed_at, 1, net,
           lag(placed_at) OVER w, lag(placed_at, 2) OVER w, first_value(placed_at) OVER w
      FROM facts_q WINDOW w AS (PARTITION BY customer_seq ORDER BY n);

    -- each order is an occasion: a category counts once per order
    INSERT INTO customer_category_facts (customer_seq, category, shop_id, first_at, second_at,
        occasion_count)
    SELECT customer_seq, category, min(shop_id::text)::uuid,
           min(placed_at) FILTER (WHERE k = 1), min(placed_at) FILTER (WHERE k = 2),
           count(*)::integer
      FROM (SELECT d.customer_seq, d.shop_id, d.category, d.placed_at,
                   row_number() OVER (PARTITION BY d.customer_seq, d.category
                                      ORDER BY d.placed_at, d.id) AS k
              FROM (SELECT DISTINCT q.customer_seq, q.shop_id, q.placed_at, q.id, l.category
                      FROM facts_q q JOIN order_lines l ON l.order_seq = q.seq) d) r
     GROUP BY customer_seq, category;
    DROP TABLE facts_q;
    RETURN coalesce(array_length(p_customers, 1), 0);
END
$$;

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

-- Cohorts: occasions per (local day of the customer's first, local day of
-- the occasion).  A customer is active in a calendar week or month through
-- the first of their occasions in it: those whose predecessor is in an
-- earlier week (month), or that have none, are counted apart.
CREATE TABLE cohort_cells (
    shop_id    uuid NOT NULL REFERENCES shops (id),
    first_day  date NOT NULL,
    day        date NOT NULL,
    occasions  bigint NOT NULL,
    orders     bigint NOT NULL,
    net        bigint NOT NULL,
    new_weeks  bigint NOT NULL,  -- occasions that are their customer's first in the week
    new_months bigint NOT NULL,  -- the same for the month
    PRIMARY KEY (shop_id, first_day, day)
);
COMMENT ON TABLE cohort_cells IS 'Purchase occasions per (shop, local day of the first occasion, local day), less the deltas not yet folded in';

-- One row per occasion written (+1) or removed (-1).  No foreign key, as
-- in facts_cell_deltas.
CREATE TABLE occasion_deltas (
    shop_id   uuid NOT NULL,
    day       date NOT NULL,
    n         smallint NOT NULL,  -- least(n, 3)
    prev_day  date,
    prev2_day date,
    first_day date NOT NULL,
    occasions bigint NOT NULL,
    orders    bigint NOT NULL,
    net       bigint NOT NULL
);
CREATE INDEX occasion_deltas_shop ON occasion_deltas (shop_id);
COMMENT ON TABLE occasion_deltas IS 'Changes to occasion_days, occasion_pairs, occasion_pair_blocks and cohort_cells not yet folded in by occasion_cells_compact()';

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
                (OLD.prev2_started_at AT TIME ZONE zone)::date,
                (OLD.first_started_at AT TIME ZONE zone)::date, -1, -OLD.orders, -OLD.net);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO occasion_deltas
        VALUES (NEW.shop_id, (NEW.started_at AT TIME ZONE zone)::date, least(NEW.n, 3),
                (NEW.prev_started_at AT TIME ZONE zone)::date,
                (NEW.prev2_started_at AT TIME ZONE zone)::date,
                (NEW.first_started_at AT TIME ZONE zone)::date, 1, NEW.orders, NEW.net);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER purchase_occasions_cells AFTER INSERT OR UPDATE OR DELETE ON purchase_occasions
    FOR EACH ROW EXECUTE FUNCTION occasion_cells_track();

-- A shop's occasions as deltas-shaped rows (one per occasion): the
-- source of the computations below.
CREATE FUNCTION occasion_rows(p_shop uuid)
RETURNS TABLE (day date, n smallint, prev_day date, prev2_day date, first_day date,
               occasions bigint, orders bigint, net bigint)
LANGUAGE sql STABLE AS $$
    SELECT (o.started_at AT TIME ZONE s.timezone)::date, least(o.n, 3)::smallint,
           (o.prev_started_at AT TIME ZONE s.timezone)::date,
           (o.prev2_started_at AT TIME ZONE s.timezone)::date,
           (o.first_started_at AT TIME ZONE s.timezone)::date, 1::bigint, o.orders::bigint, o.net
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

-- Is an occasion on p_day the first of its customer in its calendar week
-- (month), given its predecessor's day?  Plain expressions: PostgreSQL
-- inlines them.
CREATE FUNCTION cohort_new_week(p_day date, p_prev_day date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_prev_day IS NULL
            OR date_trunc('week', p_prev_day::timestamp) < date_trunc('week', p_day::timestamp))::integer
$$;
CREATE FUNCTION cohort_new_month(p_day date, p_prev_day date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_prev_day IS NULL
            OR date_trunc('month', p_prev_day::timestamp) < date_trunc('month', p_day::timestamp))::integer
$$;

CREATE FUNCTION cohort_cells_compute(p_shop uuid)
RETURNS TABLE (first_day date, day date, occasions bigint, orders bigint, net bigint,
               new_weeks bigint, new_months bigint)
LANGUAGE sql STABLE AS $$
    SELECT r.first_day, r.day, sum(r.occasions)::bigint, sum(r.orders)::bigint, sum(r.net)::bigint,
           sum(r.occasions * cohort_new_week(r.day, r.prev_day))::bigint,
           sum(r.occasions * cohort_new_month(r.day, r.prev_day))::bigint
      FROM occasion_rows(p_shop) r
     GROUP BY 1, 2
$$;

CREATE FUNCTION cohort_cells_stored(p_shop uuid)
RETURNS TABLE (first_day date, day date, occasions bigint, orders bigint, net bigint,
               new_weeks bigint, new_months bigint)
LANGUAGE sql STABLE AS $$
    SELECT y.first_day, y.day, sum(y.occasions)::bigint, sum(y.orders)::bigint, sum(y.net)::bigint,
           sum(y.new_weeks)::bigint, sum(y.new_months)::bigint
      FROM (SELECT c.first_day, c.day, c.occasions, c.orders, c.net, c.new_weeks, c.new_months
              FROM cohort_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.first_day, d.day, d.occasions, d.orders, d.net,
                   d.occasions * cohort_new_week(d.day, d.prev_day),
                   d.occasions * cohort_new_month(d.day, d.prev_day)
              FROM occasion_deltas d WHERE d.shop_id = p_shop) y
     GROUP BY 1, 2
    HAVING sum(y.occasions) <> 0 OR sum(y.orders) <> 0 OR sum(y.net) <> 0
        OR sum(y.new_weeks) <> 0 OR sum(y.new_months) <> 0
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
    DELETE FROM cohort_cells WHERE shop_id = p_shop;
    INSERT INTO cohort_cells (shop_id, first_day, day, occasions, orders, net, new_weeks,
        new_months)
    SELECT p_shop, c.* FROM cohort_cells_compute(p_shop) c;
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
-- One statement per shop (no temporary tables: a fold over many shops
-- would hold their catalog locks to the end); the cells it leaves at zero
-- come back from the upserts and are deleted by key after it.
CREATE FUNCTION occasion_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop    uuid;
    folded  bigint := 0;
    n       bigint;
    zd_day  date[];
    zd_first boolean[];
    zc_first date[];
    zc_day  date[];
    zp_start date[];
    zp_end  date[];
    zb_start date[];
    zb_block integer[];
BEGIN
    FOR shop IN SELECT DISTINCT d.shop_id FROM occasion_deltas d ORDER BY 1 LOOP
        PERFORM facts_cells_lock(shop, false);
        WITH gone AS (DELETE FROM occasion_deltas d WHERE d.shop_id = shop RETURNING d.*),
             g AS (SELECT x.day, x.n, x.prev_day, x.prev2_day, x.first_day,
                          sum(x.occasions) AS occasions, sum(x.orders) AS orders, sum(x.net) AS net
                     FROM gone x GROUP BY 1, 2, 3, 4, 5),
             days AS (INSERT INTO occasion_days AS c (shop_id, day, first, occasions, orders, net,
                          gap_days)
                      SELECT shop, g.day, g.n = 1, sum(g.occasions), sum(g.orders), sum(g.net),
                             coalesce(sum(g.occasions * (g.day - g.prev_day)), 0)
                        FROM g GROUP BY g.day, g.n = 1
                      ON CONFLICT (shop_id, day, first) DO UPDATE
                         SET occasions = c.occasions + excluded.occasions,
                             orders = c.orders + excluded.orders, net = c.net + excluded.net,
                             gap_days = c.gap_days + excluded.gap_days
                      RETURNING c.day, c.first, c.occasions = 0 AND c.orders = 0 AND c.net = 0
                                AND c.gap_days = 0 AS zero),
             cohorts AS (INSERT INTO cohort_cells AS c (shop_id, first_day, day, occasions, orders,
                             net, new_weeks, new_months)
                         SELECT shop, g.first_day, g.day, sum(g.occasions), sum(g.orders),
                                sum(g.net), sum(g.occasions * cohort_new_week(g.day, g.prev_day)),
                                sum(g.occasions * cohort_new_month(g.day, g.prev_day))
                           FROM g GROUP BY g.first_day, g.day
                         ON CONFLICT (shop_id, first_day, day) DO UPDATE
                            SET occasions = c.occasions + excluded.occasions,
                                orders = c.orders + excluded.orders, net = c.net + excluded.net,
                                new_weeks = c.new_weeks + excluded.new_weeks,
                                new_months = c.new_months + excluded.new_months
                         RETURNING c.first_day, c.day, c.occasions = 0 AND c.orders = 0
                                   AND c.net = 0 AND c.new_weeks = 0 AND c.new_months = 0 AS zero),
             spans AS (SELECT x.s, x.e, sum(x.seconds) AS seconds, sum(x.laters) AS laters,
                              sum(x.triples) AS triples
                         FROM (SELECT g.prev_day AS s, g.day AS e,
                                      CASE WHEN g.n = 2 THEN g.occasions ELSE 0 END AS seconds,
                                      CASE WHEN g.n = 3 THEN g.occasions ELSE 0 END AS laters,
                                      0 AS triples
                                 FROM g WHERE g.n >= 2
                               UNION ALL
                               SELECT g.prev2_day, g.day, 0, 0, g.occasions FROM g WHERE g.n = 3) x
                        GROUP BY 1, 2),
             pairs AS (INSERT INTO occasion_pairs AS c (shop_id, start_day, end_day, seconds, laters,
                           triples)
                       SELECT shop, p.s, p.e, p.seconds, p.laters, p.triples FROM spans p
                        WHERE p.seconds <> 0 OR p.laters <> 0 OR p.triples <> 0
                       ON CONFLICT (shop_id, end_day, start_day) DO UPDATE
                          SET seconds = c.seconds + excluded.seconds,
                              laters = c.laters + excluded.laters,
                              triples = c.triples + excluded.triples
                       RETURNING c.start_day, c.end_day,
                                 c.seconds = 0 AND c.laters = 0 AND c.triples = 0 AS zero),
             blocks AS (INSERT INTO occasion_pair_blocks AS c (shop_id, start_day, end_block,
                            seconds, laters, triples)
                        SELECT shop, p.s, occasion_block(p.e), sum(p.seconds), sum(p.laters),
                               sum(p.triples)
                          FROM spans p GROUP BY 2, 3
                        HAVING sum(p.seconds) <> 0 OR sum(p.laters) <> 0 OR sum(p.triples) <> 0
                        ON CONFLICT (shop_id, start_day, end_block) DO UPDATE
                           SET seconds = c.seconds + excluded.seconds,
                               laters = c.laters + excluded.laters,
                               triples = c.triples + excluded.triples
                        RETURNING c.start_day, c.end_block,
                                  c.seconds = 0 AND c.laters = 0 AND c.triples = 0 AS zero)
        -- each key's parts in one order, so the arrays zip back into keys
        SELECT (SELECT count(*) FROM gone),
               (SELECT array_agg(x.day ORDER BY x.day, x.first) FROM days x WHERE x.zero),
               (SELECT array_agg(x.first ORDER BY x.day, x.first) FROM days x WHERE x.zero),
               (SELECT array_agg(x.first_day ORDER BY x.first_day, x.day) FROM cohorts x WHERE x.zero),
               (SELECT array_agg(x.day ORDER BY x.first_day, x.day) FROM cohorts x WHERE x.zero),
               (SELECT array_agg(x.start_day ORDER BY x.start_day, x.end_day) FROM pairs x
                 WHERE x.zero),
               (SELECT array_agg(x.end_day ORDER BY x.start_day, x.end_day) FROM pairs x
                 WHERE x.zero),
               (SELECT array_agg(x.start_day ORDER BY x.start_day, x.end_block) FROM blocks x
                 WHERE x.zero),
               (SELECT array_agg(x.end_block ORDER BY x.start_day, x.end_block) FROM blocks x
                 WHERE x.zero)
          INTO n, zd_day, zd_first, zc_first, zc_day, zp_start, zp_end, zb_start, zb_block;
        folded := folded + n;
        -- a statement cannot see its own upserts: emptied cells go now
        DELETE FROM occasion_days c USING unnest(zd_day, zd_first) z(day, first)
         WHERE c.shop_id = shop AND c.day = z.day AND c.first = z.first
           AND c.occasions = 0 AND c.orders = 0 AND c.net = 0 AND c.gap_days = 0;
        DELETE FROM cohort_cells c USING unnest(zc_first, zc_day) z(first_day, day)
         WHERE c.shop_id = shop AND c.first_day = z.first_day AND c.day = z.day
           AND c.occasions = 0 AND c.orders = 0 AND c.net = 0 AND c.new_weeks = 0
           AND c.new_months = 0;
        DELETE FROM occasion_pairs c USING unnest(zp_start, zp_end) z(s, e)
         WHERE c.shop_id = shop AND c.end_day = z.e AND c.start_day = z.s
           AND c.seconds = 0 AND c.laters = 0 AND c.triples = 0;
        DELETE FROM occasion_pair_blocks c USING unnest(zb_start, zb_block) z(s, b)
         WHERE c.shop_id = shop AND c.start_day = z.s AND c.end_block = z.b
           AND c.seconds = 0 AND c.laters = 0 AND c.triples = 0;
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
    UNION ALL
    SELECT s.id, 'cohort cell differs from the occasions', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.first_day, b.first_day) || ' cohort, '
                           || coalesce(a.day, b.day) || ': stored ' || coalesce(a.occasions, 0)
                           || '/' || coalesce(a.orders, 0) || '/' || coalesce(a.net, 0) || '/'
                           || coalesce(a.new_weeks, 0) || '/' || coalesce(a.new_months, 0)
                           || ', computed ' || coalesce(b.occasions, 0) || '/'
                           || coalesce(b.orders, 0) || '/' || coalesce(b.net, 0) || '/'
                           || coalesce(b.new_weeks, 0) || '/' || coalesce(b.new_months, 0) AS detail
                      FROM cohort_cells_stored(s.id) a
                      FULL JOIN cohort_cells_compute(s.id) b
                        ON a.first_day = b.first_day AND a.day = b.day
                     WHERE (a.occasions, a.orders, a.net, a.new_weeks, a.new_months)
                           IS DISTINCT FROM (b.occasions, b.orders, b.net, b.new_weeks,
                                             b.new_months)) d
     WHERE p_shop IS NULL OR s.id = p_shop
$$;

-- Existing shops (no lock per shop: this transaction already holds
-- purchase_occasions exclusively).
INSERT INTO occasion_days (shop_id, day, first, occasions, orders, net, gap_days)
SELECT s.id, c.* FROM shops s, LATERAL occasion_days_compute(s.id) c;
INSERT INTO occasion_pairs (shop_id, start_day, end_day, seconds, laters, triples)
SELECT s.id, c.* FROM shops s, LATERAL occasion_pairs_compute(s.id) c;
INSERT INTO occasion_pair_blocks (shop_id, start_day, end_block, seconds, laters, triples)
SELECT p.shop_id, p.start_day, occasion_block(p.end_day), sum(p.seconds), sum(p.laters),
       sum(p.triples)
  FROM occasion_pairs p GROUP BY 1, 2, 3;
INSERT INTO cohort_cells (shop_id, first_day, day, occasions, orders, net, new_weeks, new_months)
SELECT s.id, c.* FROM shops s, LATERAL cohort_cells_compute(s.id) c;
