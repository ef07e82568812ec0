-- RFM cells (issue 5): scored customers counted per (local day of the last
-- qualifying order, order count), kept exact in the same transaction as
-- every change of customer_facts.  A segment depends on R and F only, so
-- the RFM summary reads these few thousand cells instead of every
-- customer's facts.  A second, coarser histogram counts customers per
-- bucket of total spent (two significant digits): the monetary quintiles
-- are found in it, then read exactly from the facts' index within one
-- bucket.  A third counts the days from a first to a second purchase, per
-- category and for the shop: the medians due-for-repurchase compares with.
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
-- shop's cells under an exclusive lock; writers of deltas and the fold hold
-- it shared, so none computes a day with a zone that is being replaced.
CREATE FUNCTION facts_cells_lock(p_shop uuid, p_exclusive boolean) RETURNS void
LANGUAGE sql AS $$
    SELECT CASE WHEN p_exclusive
        THEN pg_advisory_xact_lock(hashtextextended('facts_cells ' || p_shop, 0))
        ELSE pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || p_shop, 0)) END
$$;

-- Statement-level, over transition tables: an import's bulk refresh of a
-- million customers runs it once, not a million times.
CREATE FUNCTION facts_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Locks first, each its own statement: the delta's statement then
    -- takes a snapshot that sees a zone change committed while we waited.
    IF TG_OP = 'DELETE' THEN
        PERFORM facts_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM old_facts ORDER BY 1) x(s);
    ELSE
        PERFORM facts_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM new_facts ORDER BY 1) x(s);
    END IF;
    -- No grouping: most statements change one customer's facts, and an
    -- aggregate costs more than the two rows it would save.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO facts_cell_deltas
        SELECT o.shop_id, (o.last_order_at AT TIME ZONE s.timezone)::date, o.order_count,
               rfm_spend_bucket(o.total_spent), -1, -o.total_spent,
               (o.second_order_at AT TIME ZONE s.timezone)::date
               - (o.first_order_at AT TIME ZONE s.timezone)::date
          FROM old_facts o JOIN shops s ON s.id = o.shop_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO facts_cell_deltas
        SELECT n.shop_id, (n.last_order_at AT TIME ZONE s.timezone)::date, n.order_count,
               rfm_spend_bucket(n.total_spent), 1, n.total_spent,
               (n.second_order_at AT TIME ZONE s.timezone)::date
               - (n.first_order_at AT TIME ZONE s.timezone)::date
          FROM new_facts n JOIN shops s ON s.id = n.shop_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER customer_facts_cells_insert AFTER INSERT ON customer_facts
    REFERENCING NEW TABLE AS new_facts
    FOR EACH STATEMENT EXECUTE FUNCTION facts_cells_track();
CREATE TRIGGER customer_facts_cells_update AFTER UPDATE ON customer_facts
    REFERENCING OLD TABLE AS old_facts NEW TABLE AS new_facts
    FOR EACH STATEMENT EXECUTE FUNCTION facts_cells_track();
CREATE TRIGGER customer_facts_cells_delete AFTER DELETE ON customer_facts
    REFERENCING OLD TABLE AS old_facts
    FOR EACH STATEMENT EXECUTE FUNCTION facts_cells_track();

-- Category facts are only ever inserted and deleted (a refresh replaces a
-- customer's).  Most rows have no second purchase: no lock, no delta.
CREATE FUNCTION interval_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT FROM old_cats WHERE second_at IS NOT NULL) THEN
            RETURN NULL;
        END IF;
        PERFORM facts_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM old_cats ORDER BY 1) x(s);
        INSERT INTO interval_deltas
        SELECT o.shop_id, o.category, (o.second_at AT TIME ZONE s.timezone)::date
               - (o.first_at AT TIME ZONE s.timezone)::date, -1
          FROM old_cats o JOIN shops s ON s.id = o.shop_id WHERE o.second_at IS NOT NULL;
    ELSE
        IF NOT EXISTS (SELECT FROM new_cats WHERE second_at IS NOT NULL) THEN
            RETURN NULL;
        END IF;
        PERFORM facts_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM new_cats ORDER BY 1) x(s);
        INSERT INTO interval_deltas
        SELECT n.shop_id, n.category, (n.second_at AT TIME ZONE s.timezone)::date
               - (n.first_at AT TIME ZONE s.timezone)::date, 1
          FROM new_cats n JOIN shops s ON s.id = n.shop_id WHERE n.second_at IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_category_facts_insert AFTER INSERT ON customer_category_facts
    REFERENCING NEW TABLE AS new_cats
    FOR EACH STATEMENT EXECUTE FUNCTION interval_cells_track();
CREATE TRIGGER customer_category_facts_delete AFTER DELETE ON customer_category_facts
    REFERENCING OLD TABLE AS old_cats
    FOR EACH STATEMENT EXECUTE FUNCTION interval_cells_track();
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

-- Fold every shop's deltas into its cells, shop by shop (each its own
-- short lock); returns the number of deltas folded.
CREATE FUNCTION facts_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop   uuid;
    folded bigint := 0;
    n      bigint;
BEGIN
    FOR shop IN SELECT d.shop_id FROM facts_cell_deltas d UNION SELECT d.shop_id FROM interval_deltas d
                ORDER BY 1 LOOP
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
$$;

INSERT INTO rfm_cells (shop_id, last_day, order_count, customers, spent)
SELECT s.id, c.* FROM shops s, LATERAL rfm_cells_compute(s.id) c;
INSERT INTO rfm_spend_cells (shop_id, bucket, customers)
SELECT s.id, c.* FROM shops s, LATERAL rfm_spend_compute(s.id) c;
INSERT INTO interval_cells (shop_id, category, days, customers)
SELECT s.id, c.* FROM shops s, LATERAL interval_cells_compute(s.id) c;
