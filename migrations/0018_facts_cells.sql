-- Histograms kept with the facts (issue 5).  RFM cells: scored customers
-- counted per (local day of the last qualifying order, order count), kept exact in the same transaction as
-- every change of customer_facts.  A segment depends on R and F only, so
-- the RFM summary reads these few thousand cells instead of every
-- customer's facts.  A second, coarser histogram counts customers per
-- bucket of total spent (two significant digits): the monetary quintiles
-- are found in it, then read exactly from the facts' index within one
-- bucket.  A third counts the days from a first to a second purchase, per
-- category and for the shop: the medians due-for-repurchase compares with.
-- And each customer's net spend over the shop's last 365 local days (vip)
-- is kept for the current day.
--
-- Writers never update a cell: a change of facts appends deltas (one
-- customer leaving a cell and a bucket, entering others), so concurrent
-- orders of different customers never wait on the same row.  The janitor
-- folds the deltas in once a minute; readers add both.  Erased customers
-- stay counted here and are subtracted by the reader (they are few).

CREATE TABLE rfm_cells (
    shop_id     uuid NOT NULL REFERENCES shops (id),
    last_day    date NOT NULL,
    order_count integer NOT NULL,
    -- no CHECK (customers >= 0): the fold's upsert would check its
    -- proposed row (a net departure, negative) before finding the cell
    customers   bigint NOT NULL,
    spent       bigint NOT NULL,
    PRIMARY KEY (shop_id, last_day, order_count)
);
COMMENT ON TABLE rfm_cells IS 'Customers with facts per (shop, local day of last order, order count), less the deltas not yet folded in';

CREATE TABLE rfm_spend_cells (
    shop_id   uuid NOT NULL REFERENCES shops (id),
    bucket    bigint NOT NULL,
    customers bigint NOT NULL,  -- no CHECK, as in rfm_cells
    PRIMARY KEY (shop_id, bucket)
);
COMMENT ON TABLE rfm_spend_cells IS 'Customers with facts per (shop, rfm_spend_bucket(total_spent)), less the deltas not yet folded in';

-- One row per customer entering (+1) or leaving (-1) a cell and a bucket:
-- both histograms fold from it.  No foreign key: the facts a delta comes
-- from already reference the shop, and a check per order would cost more
-- than the delta itself.
CREATE TABLE facts_cell_deltas (
    shop_id     uuid NOT NULL,
    last_day    date NOT NULL,
    order_count integer NOT NULL,
    bucket      bigint NOT NULL,
    customers   bigint NOT NULL,
    spent       bigint NOT NULL,
    interval_days integer  -- local days from first to second purchase, if any
);
CREATE INDEX facts_cell_deltas_shop ON facts_cell_deltas (shop_id);
COMMENT ON TABLE facts_cell_deltas IS 'Changes to rfm_cells, rfm_spend_cells and interval_cells not yet folded in by facts_cells_compact()';

-- Customers per (category, local days from first to second purchase in
-- it); category '' (no category has that name: they have at least one
-- character) counts the customer's own second purchase.
CREATE TABLE interval_cells (
    shop_id   uuid NOT NULL REFERENCES shops (id),
    category  text NOT NULL,
    days      integer NOT NULL,
    customers bigint NOT NULL,  -- no CHECK, as in rfm_cells
    PRIMARY KEY (shop_id, category, days)
);
COMMENT ON TABLE interval_cells IS 'Repeat customers per (shop, category or '''' for any, days to the second purchase), less the deltas not yet folded in';

-- The categories' deltas (the shop-wide ones ride on facts_cell_deltas).
CREATE TABLE interval_deltas (
    shop_id   uuid NOT NULL,
    category  text NOT NULL,
    days      integer NOT NULL,
    customers bigint NOT NULL
);
CREATE INDEX interval_deltas_shop ON interval_deltas (shop_id);
COMMENT ON TABLE interval_deltas IS 'Changes to interval_cells from customer_category_facts not yet folded in';

-- The least value of v's bucket: v itself below 100, else v with all but
-- its two leading digits zeroed (at most 90 buckets a decade); every
-- negative total in one bucket.  Buckets order as their values.
CREATE FUNCTION rfm_spend_bucket(v bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v < 0 THEN -9223372036854775808
                WHEN v < 100 THEN v
                ELSE v - v % ('1' || repeat('0', length(v::text) - 2))::bigint END
$$;

-- A cell's day is in the shop's zone.  A change of zone rebuilds the
-- shop's cells under an exclusive lock; writers of deltas (the triggers
-- below take it themselves, inline) and the fold hold it shared, so none
-- computes a day with a zone that is being replaced.
CREATE FUNCTION facts_cells_lock(p_shop uuid, p_exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('facts_cells ' || p_shop, 0));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || p_shop, 0));
    END IF;
END
$$;

-- vip: every customer's net spend over the 365 local days ending on as_of,
-- kept for the shop's current day, so a vip page reads the top of an index
-- instead of summing a year of purchase occasions.  Exact within the day:
-- a transaction that changes a customer's facts (every change of their
-- occasions does) recomputes their spend at commit, under the cells' lock.  A
-- new day or zone leaves vip_state behind: pages then compute it live and
-- rebuyd's janitor rebuilds it (vip_stale_shops).  Erased customers are
-- left out by the reader.
CREATE TABLE vip_state (
    shop_id  uuid PRIMARY KEY REFERENCES shops (id),
    as_of    date NOT NULL,
    tz       text NOT NULL,
    spenders bigint NOT NULL  -- customers with spend > 0, less vip_count_deltas
);
COMMENT ON TABLE vip_state IS 'The local day and zone vip_spend is kept for, per shop';

-- Customers whose spend became positive (+1) or stopped being (-1): vip's
-- K needs their number, which a count of a year's spenders would cost.
CREATE TABLE vip_count_deltas (
    shop_id   uuid NOT NULL,
    customers bigint NOT NULL
);
CREATE INDEX vip_count_deltas_shop ON vip_count_deltas (shop_id);
COMMENT ON TABLE vip_count_deltas IS 'Changes to vip_state.spenders not yet folded in by facts_cells_compact()';

-- No foreign keys, as in the deltas: rows come from facts that have them.
CREATE TABLE vip_spend (
    customer_seq bigint PRIMARY KEY,
    shop_id      uuid NOT NULL,
    spend        bigint NOT NULL
);
CREATE INDEX vip_spend_top ON vip_spend (shop_id, spend DESC) INCLUDE (customer_seq) WHERE spend > 0;
CREATE INDEX vip_spend_shop ON vip_spend (shop_id);
COMMENT ON TABLE vip_spend IS 'Net spend over the 365 local days ending on vip_state.as_of, per customer';

-- One customer's spend in the window ending on p_as_of, 0 if none.
-- PL/pgSQL, not SQL: it runs with every order, and a SQL function's
-- statement would be planned again on every call.
CREATE FUNCTION vip_spend_of(p_customer bigint, p_as_of date, p_tz text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(sum(o.net), 0) FROM purchase_occasions o
             WHERE o.customer_seq = p_customer
               AND o.started_at >= (p_as_of - 364)::timestamp AT TIME ZONE p_tz
               AND o.started_at < (p_as_of + 1)::timestamp AT TIME ZONE p_tz);
END
$$;

-- After a change of a customer's facts (nothing where the shop keeps no
-- vip_state).  The old spend is read after the customer's lock: a
-- crossing of zero is counted once.
CREATE FUNCTION vip_spend_refresh(p_customer bigint, p_shop uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    st     vip_state;
    before bigint;
    after  bigint;
BEGIN
    SELECT * INTO st FROM vip_state WHERE shop_id = p_shop;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    after := vip_spend_of(p_customer, st.as_of, st.tz);
    SELECT v.spend INTO before FROM vip_spend v WHERE v.customer_seq = p_customer;
    IF before IS NOT DISTINCT FROM after OR (before IS NULL AND after = 0) THEN
        RETURN;
    END IF;
    INSERT INTO vip_spend AS v (customer_seq, shop_id, spend) VALUES (p_customer, p_shop, after)
    ON CONFLICT (customer_seq) DO UPDATE SET spend = excluded.spend;
    IF (after > 0) <> (coalesce(before, 0) > 0) THEN
        INSERT INTO vip_count_deltas (shop_id, customers)
        VALUES (p_shop, CASE WHEN after > 0 THEN 1 ELSE -1 END);
    END IF;
END
$$;

-- Every customer's spend for the shop's current day and zone.
-- Without waiting: an import holds the shared lock for minutes, and a
-- waiting exclusive request would queue every order of the shop behind it.
-- false if the lock was busy (the janitor tries again a minute later).
CREATE FUNCTION vip_spend_rebuild(p_shop uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    zone text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('facts_cells ' || p_shop, 0)) THEN
        RETURN false;
    END IF;
    SELECT (now() AT TIME ZONE s.timezone)::date, s.timezone INTO day, zone
      FROM shops s WHERE s.id = p_shop;
    DELETE FROM vip_spend WHERE shop_id = p_shop;
    DELETE FROM vip_count_deltas WHERE shop_id = p_shop;
    INSERT INTO vip_spend (customer_seq, shop_id, spend)
    SELECT o.customer_seq, p_shop, sum(o.net) FROM purchase_occasions o
     WHERE o.shop_id = p_shop
       AND o.started_at >= (day - 364)::timestamp AT TIME ZONE zone
       AND o.started_at < (day + 1)::timestamp AT TIME ZONE zone
     GROUP BY o.customer_seq HAVING sum(o.net) > 0;
    INSERT INTO vip_state (shop_id, as_of, tz, spenders)
    VALUES (p_shop, day, zone, (SELECT count(*) FROM vip_spend v WHERE v.shop_id = p_shop))
    ON CONFLICT (shop_id) DO UPDATE
       SET as_of = excluded.as_of, tz = excluded.tz, spenders = excluded.spenders;
    RETURN true;
END
$$;

-- The shops whose vip_state is missing or behind their day or zone (rebuyd's
-- janitor rebuilds them, each in its own transaction).
CREATE FUNCTION vip_stale_shops() RETURNS SETOF uuid
LANGUAGE sql STABLE AS $$
    SELECT s.id FROM shops s LEFT JOIN vip_state v ON v.shop_id = s.id
     WHERE v.shop_id IS NULL OR v.tz <> s.timezone
        OR v.as_of <> (now() AT TIME ZONE s.timezone)::date
     ORDER BY s.id
$$;

-- Row-level, with plain parameters: PL/pgSQL keeps its plans (statements
-- over transition tables cost several times more on the single-customer
-- changes every order makes).
CREATE FUNCTION facts_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.shop_id ELSE NEW.shop_id END;
    zone text;
BEGIN
    -- The lock first, its own statement: the next takes a snapshot that
    -- sees a zone change committed while we waited.
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    SELECT s.timezone INTO zone FROM shops s WHERE s.id = shop;
    IF TG_OP = 'UPDATE' AND (OLD.last_order_at, OLD.order_count, OLD.total_spent,
            OLD.first_order_at, OLD.second_order_at)
        IS NOT DISTINCT FROM (NEW.last_order_at, NEW.order_count, NEW.total_spent,
            NEW.first_order_at, NEW.second_order_at) THEN
        NULL;  -- the same cells and spend: no delta
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO facts_cell_deltas
            VALUES (OLD.shop_id, (OLD.last_order_at AT TIME ZONE zone)::date, OLD.order_count,
                    rfm_spend_bucket(OLD.total_spent), -1, -OLD.total_spent,
                    (OLD.second_order_at AT TIME ZONE zone)::date
                    - (OLD.first_order_at AT TIME ZONE zone)::date);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO facts_cell_deltas
            VALUES (NEW.shop_id, (NEW.last_order_at AT TIME ZONE zone)::date, NEW.order_count,
                    rfm_spend_bucket(NEW.total_spent), 1, NEW.total_spent,
                    (NEW.second_order_at AT TIME ZONE zone)::date
                    - (NEW.first_order_at AT TIME ZONE zone)::date);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER customer_facts_cells AFTER INSERT OR UPDATE OR DELETE ON customer_facts
    FOR EACH ROW EXECUTE FUNCTION facts_cells_track();

-- A customer's occasions change only in a transaction that also writes
-- their facts, but not always before them (a bulk refresh writes the facts
-- of all its customers, then their occasions): the spend is recomputed at
-- commit, when both are final.
CREATE FUNCTION vip_spend_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.shop_id ELSE NEW.shop_id END;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    PERFORM vip_spend_refresh(CASE WHEN TG_OP = 'DELETE' THEN OLD.customer_seq
                                   ELSE NEW.customer_seq END, shop);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER customer_facts_vip AFTER INSERT OR UPDATE OR DELETE ON customer_facts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION vip_spend_track();

-- Category facts are only ever inserted and deleted (a refresh replaces a
-- customer's).  Rows without a second purchase do not fire it.
CREATE FUNCTION interval_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r customer_category_facts := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    zone text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || r.shop_id, 0));
    SELECT s.timezone INTO zone FROM shops s WHERE s.id = r.shop_id;
    INSERT INTO interval_deltas
    VALUES (r.shop_id, r.category,
            (r.second_at AT TIME ZONE zone)::date - (r.first_at AT TIME ZONE zone)::date,
            CASE WHEN TG_OP = 'DELETE' THEN -1 ELSE 1 END);
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_category_facts_insert AFTER INSERT ON customer_category_facts
    FOR EACH ROW WHEN (NEW.second_at IS NOT NULL) EXECUTE FUNCTION interval_cells_track();
CREATE TRIGGER customer_category_facts_delete AFTER DELETE ON customer_category_facts
    FOR EACH ROW WHEN (OLD.second_at IS NOT NULL) EXECUTE FUNCTION interval_cells_track();
CREATE FUNCTION customer_category_facts_no_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'customer_category_facts rows are replaced, never updated (interval_cells counts them)';
END
$$;
CREATE TRIGGER customer_category_facts_no_update BEFORE UPDATE ON customer_category_facts
    FOR EACH STATEMENT EXECUTE FUNCTION customer_category_facts_no_update();

-- The cells as recomputed from the facts (erased customers included, as
-- stored): the rebuild's source and verify's reference.
CREATE FUNCTION rfm_cells_compute(p_shop uuid)
RETURNS TABLE (last_day date, order_count integer, customers bigint, spent bigint)
LANGUAGE sql STABLE AS $$
    SELECT (f.last_order_at AT TIME ZONE s.timezone)::date, f.order_count, count(*),
           sum(f.total_spent)
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id
     WHERE f.shop_id = p_shop
     GROUP BY 1, 2
$$;

-- The cells as stored: folded cells plus pending deltas.
CREATE FUNCTION rfm_cells_stored(p_shop uuid)
RETURNS TABLE (last_day date, order_count integer, customers bigint, spent bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.last_day, x.order_count, sum(x.customers)::bigint, sum(x.spent)::bigint
      FROM (SELECT c.last_day, c.order_count, c.customers, c.spent
              FROM rfm_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.last_day, d.order_count, d.customers, d.spent
              FROM facts_cell_deltas d WHERE d.shop_id = p_shop) x
     GROUP BY 1, 2
    HAVING sum(x.customers) <> 0 OR sum(x.spent) <> 0
$$;

-- The same two for the spend histogram.
CREATE FUNCTION rfm_spend_compute(p_shop uuid) RETURNS TABLE (bucket bigint, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT rfm_spend_bucket(f.total_spent), count(*)
      FROM customer_facts f WHERE f.shop_id = p_shop GROUP BY 1
$$;

CREATE FUNCTION rfm_spend_stored(p_shop uuid) RETURNS TABLE (bucket bigint, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.bucket, sum(x.customers)::bigint
      FROM (SELECT c.bucket, c.customers FROM rfm_spend_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.bucket, d.customers FROM facts_cell_deltas d WHERE d.shop_id = p_shop) x
     GROUP BY 1 HAVING sum(x.customers) <> 0
$$;

-- And for the intervals.
CREATE FUNCTION interval_cells_compute(p_shop uuid)
RETURNS TABLE (category text, days integer, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT cf.category, (cf.second_at AT TIME ZONE s.timezone)::date
           - (cf.first_at AT TIME ZONE s.timezone)::date, count(*)
      FROM customer_category_facts cf JOIN shops s ON s.id = cf.shop_id
     WHERE cf.shop_id = p_shop AND cf.second_at IS NOT NULL
     GROUP BY 1, 2
    UNION ALL
    SELECT '', (f.second_order_at AT TIME ZONE s.timezone)::date
           - (f.first_order_at AT TIME ZONE s.timezone)::date, count(*)
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id
     WHERE f.shop_id = p_shop AND f.second_order_at IS NOT NULL
     GROUP BY 1, 2
$$;

CREATE FUNCTION interval_cells_stored(p_shop uuid)
RETURNS TABLE (category text, days integer, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.category, x.days, sum(x.customers)::bigint
      FROM (SELECT c.category, c.days, c.customers FROM interval_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.category, d.days, d.customers FROM interval_deltas d WHERE d.shop_id = p_shop
            UNION ALL
            SELECT '', d.interval_days, d.customers FROM facts_cell_deltas d
             WHERE d.shop_id = p_shop AND d.interval_days IS NOT NULL) x
     GROUP BY 1, 2 HAVING sum(x.customers) <> 0
$$;

-- Every histogram from the facts (the deltas, gone with the old zone, held
-- spend changes too).
CREATE FUNCTION facts_cells_rebuild(p_shop uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM facts_cells_lock(p_shop, true);
    DELETE FROM facts_cell_deltas WHERE shop_id = p_shop;
    DELETE FROM interval_deltas WHERE shop_id = p_shop;
    DELETE FROM rfm_cells WHERE shop_id = p_shop;
    DELETE FROM rfm_spend_cells WHERE shop_id = p_shop;
    DELETE FROM interval_cells WHERE shop_id = p_shop;
    INSERT INTO rfm_cells (shop_id, last_day, order_count, customers, spent)
    SELECT p_shop, c.* FROM rfm_cells_compute(p_shop) c;
    INSERT INTO rfm_spend_cells (shop_id, bucket, customers)
    SELECT p_shop, c.* FROM rfm_spend_compute(p_shop) c;
    INSERT INTO interval_cells (shop_id, category, days, customers)
    SELECT p_shop, c.* FROM interval_cells_compute(p_shop) c;
END
$$;

CREATE FUNCTION shops_cells_zone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM facts_cells_rebuild(NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER shops_cells_zone AFTER UPDATE OF timezone ON shops
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION shops_cells_zone();

-- Fold every shop's deltas into its cells, shop by shop; returns the
-- number of deltas folded.  The shared locks are held to the end (they are
-- transaction locks): a zone change waits for the whole fold.
CREATE FUNCTION facts_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop   uuid;
    folded bigint := 0;
    n      bigint;
BEGIN
    FOR shop IN SELECT d.shop_id FROM facts_cell_deltas d UNION SELECT d.shop_id FROM interval_deltas d
                UNION SELECT d.shop_id FROM vip_count_deltas d ORDER BY 1 LOOP
        PERFORM facts_cells_lock(shop, false);
        WITH gone AS (DELETE FROM facts_cell_deltas d WHERE d.shop_id = shop RETURNING d.*),
             cells AS (INSERT INTO rfm_cells AS c (shop_id, last_day, order_count, customers, spent)
                       SELECT shop, g.last_day, g.order_count, sum(g.customers), sum(g.spent)
                         FROM gone g GROUP BY g.last_day, g.order_count
                       HAVING sum(g.customers) <> 0 OR sum(g.spent) <> 0
                       ON CONFLICT (shop_id, last_day, order_count) DO UPDATE
                          SET customers = c.customers + excluded.customers,
                              spent = c.spent + excluded.spent),
             buckets AS (INSERT INTO rfm_spend_cells AS c (shop_id, bucket, customers)
                         SELECT shop, g.bucket, sum(g.customers) FROM gone g GROUP BY g.bucket
                         HAVING sum(g.customers) <> 0
                         ON CONFLICT (shop_id, bucket) DO UPDATE
                            SET customers = c.customers + excluded.customers),
             gone2 AS (DELETE FROM interval_deltas d WHERE d.shop_id = shop RETURNING d.*),
             intervals AS (INSERT INTO interval_cells AS c (shop_id, category, days, customers)
                           SELECT shop, i.category, i.days, sum(i.customers)
                             FROM (SELECT g.category, g.days, g.customers FROM gone2 g
                                   UNION ALL
                                   SELECT '', g.interval_days, g.customers FROM gone g
                                    WHERE g.interval_days IS NOT NULL) i
                            GROUP BY i.category, i.days HAVING sum(i.customers) <> 0
                           ON CONFLICT (shop_id, category, days) DO UPDATE
                              SET customers = c.customers + excluded.customers)
        SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM gone2) INTO n;
        folded := folded + n;
        -- A statement cannot see its own upserts: emptied cells go in the next.
        DELETE FROM rfm_cells c WHERE c.shop_id = shop AND c.customers = 0 AND c.spent = 0;
        DELETE FROM rfm_spend_cells c WHERE c.shop_id = shop AND c.customers = 0;
        DELETE FROM interval_cells c WHERE c.shop_id = shop AND c.customers = 0;
        WITH gone AS (DELETE FROM vip_count_deltas d WHERE d.shop_id = shop RETURNING d.customers)
        UPDATE vip_state v SET spenders = v.spenders + (SELECT sum(g.customers) FROM gone g)
         WHERE v.shop_id = shop AND EXISTS (SELECT FROM gone);
    END LOOP;
    RETURN folded;
END
$$;

-- Verify: stored cells against the recomputation, per differing cell.
CREATE FUNCTION facts_cells_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, 'rfm cell differs from the facts', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.last_day, b.last_day) || ' x '
                           || coalesce(a.order_count, b.order_count)
                           || ': stored ' || coalesce(a.customers, 0) || '/' || coalesce(a.spent, 0)
                           || ', computed ' || coalesce(b.customers, 0) || '/'
                           || coalesce(b.spent, 0) AS detail
                      FROM rfm_cells_stored(s.id) a
                      FULL JOIN rfm_cells_compute(s.id) b
                        ON a.last_day = b.last_day AND a.order_count = b.order_count
                     WHERE (a.customers, a.spent) IS DISTINCT FROM (b.customers, b.spent)) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT s.id, 'rfm spend bucket differs from the facts', d.detail
      FROM shops s,
           LATERAL (SELECT 'bucket ' || coalesce(a.bucket, b.bucket) || ': stored '
                           || coalesce(a.customers, 0) || ', computed ' || coalesce(b.customers, 0)
                           AS detail
                      FROM rfm_spend_stored(s.id) a
                      FULL JOIN rfm_spend_compute(s.id) b ON a.bucket = b.bucket
                     WHERE a.customers IS DISTINCT FROM b.customers) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT s.id, 'interval cell differs from the facts', d.detail
      FROM shops s,
           LATERAL (SELECT 'category ''' || coalesce(a.category, b.category) || ''' '
                           || coalesce(a.days, b.days) || ' days: stored ' || coalesce(a.customers, 0)
                           || ', computed ' || coalesce(b.customers, 0) AS detail
                      FROM interval_cells_stored(s.id) a
                      FULL JOIN interval_cells_compute(s.id) b
                        ON a.category = b.category AND a.days = b.days
                     WHERE a.customers IS DISTINCT FROM b.customers) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT st.shop_id, 'vip spend differs from the occasions',
           'customer ' || c.id || ': stored ' || coalesce(v.spend, 0) || ', computed '
           || vip_spend_of(c.seq, st.as_of, st.tz)
      FROM vip_state st JOIN customers c ON c.shop_id = st.shop_id
      LEFT JOIN vip_spend v ON v.customer_seq = c.seq
     WHERE (p_shop IS NULL OR st.shop_id = p_shop)
       AND coalesce(v.spend, 0) <> vip_spend_of(c.seq, st.as_of, st.tz)
    UNION ALL
    SELECT st.shop_id, 'vip spenders differ from the spends',
           'stored ' || st.spenders + x.pending || ', counted ' || x.counted
      FROM vip_state st,
           LATERAL (SELECT (SELECT coalesce(sum(d.customers), 0) FROM vip_count_deltas d
                             WHERE d.shop_id = st.shop_id) AS pending,
                           (SELECT count(*) FROM vip_spend v
                             WHERE v.shop_id = st.shop_id AND v.spend > 0) AS counted) x
     WHERE (p_shop IS NULL OR st.shop_id = p_shop) AND st.spenders + x.pending <> x.counted
$$;

INSERT INTO rfm_cells (shop_id, last_day, order_count, customers, spent)
SELECT s.id, c.* FROM shops s, LATERAL rfm_cells_compute(s.id) c;
INSERT INTO rfm_spend_cells (shop_id, bucket, customers)
SELECT s.id, c.* FROM shops s, LATERAL rfm_spend_compute(s.id) c;
INSERT INTO interval_cells (shop_id, category, days, customers)
SELECT s.id, c.* FROM shops s, LATERAL interval_cells_compute(s.id) c;
