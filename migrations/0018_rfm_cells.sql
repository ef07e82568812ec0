-- RFM cells (issue 5): scored customers counted per (local day of the last
-- qualifying order, order count), kept exact in the same transaction as
-- every change of customer_facts.  A segment depends on R and F only, so
-- the RFM summary reads these few thousand cells instead of every
-- customer's facts.  A second, coarser histogram counts customers per
-- bucket of total spent (two significant digits): the monetary quintiles
-- are found in it, then read exactly from the facts' index within one
-- bucket.
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
CREATE TABLE rfm_cell_deltas (
    shop_id     uuid NOT NULL,
    last_day    date NOT NULL,
    order_count integer NOT NULL,
    bucket      bigint NOT NULL,
    customers   bigint NOT NULL,
    spent       bigint NOT NULL
);
CREATE INDEX rfm_cell_deltas_shop ON rfm_cell_deltas (shop_id);
COMMENT ON TABLE rfm_cell_deltas IS 'Changes to rfm_cells and rfm_spend_cells not yet folded in by rfm_cells_compact()';

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
CREATE FUNCTION rfm_cells_lock(p_shop uuid, p_exclusive boolean) RETURNS void
LANGUAGE sql AS $$
    SELECT CASE WHEN p_exclusive
        THEN pg_advisory_xact_lock(hashtextextended('rfm_cells ' || p_shop, 0))
        ELSE pg_advisory_xact_lock_shared(hashtextextended('rfm_cells ' || p_shop, 0)) END
$$;

-- Statement-level, over transition tables: an import's bulk refresh of a
-- million customers runs it once, not a million times.
CREATE FUNCTION rfm_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Locks first, each its own statement: the delta's statement then
    -- takes a snapshot that sees a zone change committed while we waited.
    IF TG_OP = 'DELETE' THEN
        PERFORM rfm_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM old_facts ORDER BY 1) x(s);
    ELSE
        PERFORM rfm_cells_lock(s, false) FROM (SELECT DISTINCT shop_id FROM new_facts ORDER BY 1) x(s);
    END IF;
    -- No grouping: most statements change one customer's facts, and an
    -- aggregate costs more than the two rows it would save.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO rfm_cell_deltas
        SELECT o.shop_id, (o.last_order_at AT TIME ZONE s.timezone)::date, o.order_count,
               rfm_spend_bucket(o.total_spent), -1, -o.total_spent
          FROM old_facts o JOIN shops s ON s.id = o.shop_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO rfm_cell_deltas
        SELECT n.shop_id, (n.last_order_at AT TIME ZONE s.timezone)::date, n.order_count,
               rfm_spend_bucket(n.total_spent), 1, n.total_spent
          FROM new_facts n JOIN shops s ON s.id = n.shop_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER customer_facts_rfm_insert AFTER INSERT ON customer_facts
    REFERENCING NEW TABLE AS new_facts
    FOR EACH STATEMENT EXECUTE FUNCTION rfm_cells_track();
CREATE TRIGGER customer_facts_rfm_update AFTER UPDATE ON customer_facts
    REFERENCING OLD TABLE AS old_facts NEW TABLE AS new_facts
    FOR EACH STATEMENT EXECUTE FUNCTION rfm_cells_track();
CREATE TRIGGER customer_facts_rfm_delete AFTER DELETE ON customer_facts
    REFERENCING OLD TABLE AS old_facts
    FOR EACH STATEMENT EXECUTE FUNCTION rfm_cells_track();

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
              FROM rfm_cell_deltas d WHERE d.shop_id = p_shop) x
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
            SELECT d.bucket, d.customers FROM rfm_cell_deltas d WHERE d.shop_id = p_shop) x
     GROUP BY 1 HAVING sum(x.customers) <> 0
$$;

-- Both histograms from the facts (the deltas, gone with the old zone,
-- held spend changes too).
CREATE FUNCTION rfm_cells_rebuild(p_shop uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rfm_cells_lock(p_shop, true);
    DELETE FROM rfm_cell_deltas WHERE shop_id = p_shop;
    DELETE FROM rfm_cells WHERE shop_id = p_shop;
    DELETE FROM rfm_spend_cells WHERE shop_id = p_shop;
    INSERT INTO rfm_cells (shop_id, last_day, order_count, customers, spent)
    SELECT p_shop, c.* FROM rfm_cells_compute(p_shop) c;
    INSERT INTO rfm_spend_cells (shop_id, bucket, customers)
    SELECT p_shop, c.* FROM rfm_spend_compute(p_shop) c;
END
$$;

CREATE FUNCTION shops_rfm_zone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rfm_cells_rebuild(NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER shops_rfm_zone AFTER UPDATE OF timezone ON shops
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION shops_rfm_zone();

-- Fold every shop's deltas into its cells, shop by shop (each its own
-- short lock); returns the number of deltas folded.
CREATE FUNCTION rfm_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop   uuid;
    folded bigint := 0;
    n      bigint;
BEGIN
    FOR shop IN SELECT DISTINCT d.shop_id FROM rfm_cell_deltas d ORDER BY 1 LOOP
        PERFORM rfm_cells_lock(shop, false);
        WITH gone AS (DELETE FROM rfm_cell_deltas d WHERE d.shop_id = shop RETURNING d.*),
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
                            SET customers = c.customers + excluded.customers)
        SELECT count(*) INTO n FROM gone;
        folded := folded + n;
        -- A statement cannot see its own upserts: emptied cells go in the next.
        DELETE FROM rfm_cells c WHERE c.shop_id = shop AND c.customers = 0 AND c.spent = 0;
        DELETE FROM rfm_spend_cells c WHERE c.shop_id = shop AND c.customers = 0;
    END LOOP;
    RETURN folded;
END
$$;

-- Verify: stored cells against the recomputation, per differing cell.
CREATE FUNCTION rfm_cells_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
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
$$;

INSERT INTO rfm_cells (shop_id, last_day, order_count, customers, spent)
SELECT s.id, c.* FROM shops s, LATERAL rfm_cells_compute(s.id) c;
INSERT INTO rfm_spend_cells (shop_id, bucket, customers)
SELECT s.id, c.* FROM shops s, LATERAL rfm_spend_compute(s.id) c;
