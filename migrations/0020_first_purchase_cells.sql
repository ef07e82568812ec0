-- Customers counted per (local day of their first purchase, local day of
-- their second), kept with the facts (issue 4): time-to-second-purchase
-- and first-order read these instead of every customer who first bought in
-- the period (126k facts rows for a quarter of a 1M-customer shop).
--
--   first_cells     per first-order channel (kind 'c') and per product role
--                   of the first order (kind 'r', a customer in each role
--                   present), from customer_facts
--   category_cells  per category, from customer_category_facts
--
-- second_day is 'infinity' for customers without a second purchase (yet):
-- a key column cannot be NULL, and it compares as later than any as_of.
-- Kept as the other histograms are (0018, 0019): row triggers append
-- deltas, the janitor folds them, readers add both, a zone change rebuilds
-- under the same advisory lock.

CREATE TABLE first_cells (
    shop_id    uuid NOT NULL REFERENCES shops (id),
    first_day  date NOT NULL,
    kind       "char" NOT NULL CHECK (kind IN ('c', 'r')),
    key        text NOT NULL,      -- the channel or the role
    second_day date NOT NULL,
    customers  bigint NOT NULL,    -- no CHECK: see rfm_cells (0018)
    PRIMARY KEY (shop_id, first_day, kind, key, second_day)
);
COMMENT ON TABLE first_cells IS 'Customers per (shop, local first and second purchase day, first-order channel or role), less the deltas not yet folded in';

CREATE TABLE category_cells (
    shop_id    uuid NOT NULL REFERENCES shops (id),
    first_day  date NOT NULL,
    category   text NOT NULL,
    second_day date NOT NULL,
    customers  bigint NOT NULL,
    PRIMARY KEY (shop_id, first_day, category, second_day)
);
COMMENT ON TABLE category_cells IS 'Customers per (shop, category, local first and second purchase day in it), less the deltas not yet folded in';

-- One row per customer entering (+1) or leaving (-1) a cell; a
-- first-order delta carries the channel and all the roles (the fold and
-- the readers spread it).  No foreign keys, as in facts_cell_deltas.
CREATE TABLE first_cell_deltas (
    shop_id    uuid NOT NULL,
    first_day  date NOT NULL,
    channel    text NOT NULL,
    roles      text[] NOT NULL,
    second_day date NOT NULL,
    customers  bigint NOT NULL
);
CREATE INDEX first_cell_deltas_shop ON first_cell_deltas (shop_id);
COMMENT ON TABLE first_cell_deltas IS 'Changes to first_cells not yet folded in by first_cells_compact()';

CREATE TABLE category_cell_deltas (
    shop_id    uuid NOT NULL,
    first_day  date NOT NULL,
    category   text NOT NULL,
    second_day date NOT NULL,
    customers  bigint NOT NULL
);
CREATE INDEX category_cell_deltas_shop ON category_cell_deltas (shop_id);
COMMENT ON TABLE category_cell_deltas IS 'Changes to category_cells not yet folded in by first_cells_compact()';

-- A first-order delta's cells: its channel, and each of its roles.
CREATE FUNCTION first_cells_spread(p_channel text, p_roles text[])
RETURNS TABLE (kind "char", key text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'c'::"char", p_channel
    UNION ALL
    SELECT 'r'::"char", r FROM unnest(p_roles) r
$$;

CREATE FUNCTION first_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.shop_id ELSE NEW.shop_id END;
    zone text;
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.first_order_at, OLD.second_order_at, OLD.first_order_channel,
            OLD.first_order_roles)
        IS NOT DISTINCT FROM (NEW.first_order_at, NEW.second_order_at, NEW.first_order_channel,
            NEW.first_order_roles) THEN
        RETURN NULL;  -- most orders change only the last order and the spend
    END IF;
    -- the lock first, its own statement (0018)
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    SELECT s.timezone INTO zone FROM shops s WHERE s.id = shop;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO first_cell_deltas
        VALUES (OLD.shop_id, (OLD.first_order_at AT TIME ZONE zone)::date, OLD.first_order_channel,
                OLD.first_order_roles,
                coalesce((OLD.second_order_at AT TIME ZONE zone)::date, 'infinity'), -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO first_cell_deltas
        VALUES (NEW.shop_id, (NEW.first_order_at AT TIME ZONE zone)::date, NEW.first_order_channel,
                NEW.first_order_roles,
                coalesce((NEW.second_order_at AT TIME ZONE zone)::date, 'infinity'), 1);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_facts_first_cells AFTER INSERT OR UPDATE OR DELETE ON customer_facts
    FOR EACH ROW EXECUTE FUNCTION first_cells_track();

-- Category facts are only inserted and deleted (0018 forbids updates).
CREATE FUNCTION category_cells_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r customer_category_facts := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    zone text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || r.shop_id, 0));
    SELECT s.timezone INTO zone FROM shops s WHERE s.id = r.shop_id;
    INSERT INTO category_cell_deltas
    VALUES (r.shop_id, (r.first_at AT TIME ZONE zone)::date, r.category,
            coalesce((r.second_at AT TIME ZONE zone)::date, 'infinity'),
            CASE WHEN TG_OP = 'DELETE' THEN -1 ELSE 1 END);
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_category_facts_cells AFTER INSERT OR DELETE ON customer_category_facts
    FOR EACH ROW EXECUTE FUNCTION category_cells_track();

-- A refresh (0006) used to replace all of a customer's category facts
-- with every order; it now writes only those that changed, so an order
-- fires these triggers for the categories it bought, not for all.
CREATE OR REPLACE FUNCTION customer_facts_refresh(p_customer bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f    jsonb;
    shop uuid;
BEGIN
    -- Changes to one customer's orders queue here.  Computing only after
    -- the lock (a new statement, so a new snapshot under READ COMMITTED)
    -- sees every order committed before us: two concurrent orders of the
    -- same customer cannot each store facts that miss the other.
    -- NO KEY UPDATE: it must not conflict with the KEY SHARE locks that
    -- foreign-key checks of concurrent order inserts hold on this row.
    SELECT shop_id INTO shop FROM customers WHERE seq = p_customer FOR NO KEY UPDATE;
    f := customer_facts_compute(p_customer);
    -- only the categories whose facts changed (usually the ones this order
    -- bought): each row written costs its histograms' triggers
    DELETE FROM customer_category_facts cf WHERE cf.customer_seq = p_customer
       AND NOT EXISTS (SELECT FROM jsonb_each(f -> 'categories') e
                        WHERE e.key = cf.category
                          AND (e.value ->> 'first_at')::timestamptz = cf.first_at
                          AND (e.value ->> 'second_at')::timestamptz IS NOT DISTINCT FROM cf.second_at
                          AND (e.value ->> 'occasion_count')::integer = cf.occasion_count);
    PERFORM purchase_occasions_store(p_customer, shop, f -> 'occasions');
    IF (f ->> 'order_count')::integer = 0 THEN
        DELETE FROM customer_facts WHERE customer_seq = p_customer;
        RETURN;
    END IF;
    INSERT INTO customer_facts AS cf (customer_seq, shop_id, order_count, first_order_at,
        second_order_at, last_order_at, total_spent, first_order_channel,
        first_order_categories, first_order_roles)
    VALUES (p_customer, shop, (f ->> 'order_count')::integer, (f ->> 'first_order_at')::timestamptz,
        (f ->> 'second_order_at')::timestamptz, (f ->> 'last_order_at')::timestamptz,
        (f ->> 'total_spent')::bigint, f ->> 'first_order_channel',
        ARRAY(SELECT jsonb_array_elements_text(f -> 'first_order_categories')),
        ARRAY(SELECT jsonb_array_elements_text(f -> 'first_order_roles')))
    ON CONFLICT (customer_seq) DO UPDATE SET order_count = EXCLUDED.order_count,
        first_order_at = EXCLUDED.first_order_at, second_order_at = EXCLUDED.second_order_at,
        last_order_at = EXCLUDED.last_order_at, total_spent = EXCLUDED.total_spent,
        first_order_channel = EXCLUDED.first_order_channel,
        first_order_categories = EXCLUDED.first_order_categories,
        first_order_roles = EXCLUDED.first_order_roles;
    INSERT INTO customer_category_facts (customer_seq, category, shop_id, first_at, second_at,
        occasion_count)
    SELECT p_customer, e.key, shop, (e.value ->> 'first_at')::timestamptz,
           (e.value ->> 'second_at')::timestamptz, (e.value ->> 'occasion_count')::integer
      FROM jsonb_each(f -> 'categories') e
    ON CONFLICT (customer_seq, category) DO NOTHING;
END
$$;

-- The cells as recomputed from the facts: the rebuild's source and
-- verify's reference.
CREATE FUNCTION first_cells_compute(p_shop uuid)
RETURNS TABLE (first_day date, kind "char", key text, second_day date, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT (f.first_order_at AT TIME ZONE s.timezone)::date, g.kind, g.key,
           coalesce((f.second_order_at AT TIME ZONE s.timezone)::date, 'infinity'), count(*)
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id,
           LATERAL first_cells_spread(f.first_order_channel, f.first_order_roles) g
     WHERE f.shop_id = p_shop
     GROUP BY 1, 2, 3, 4
$$;

CREATE FUNCTION category_cells_compute(p_shop uuid)
RETURNS TABLE (first_day date, category text, second_day date, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT (cf.first_at AT TIME ZONE s.timezone)::date, cf.category,
           coalesce((cf.second_at AT TIME ZONE s.timezone)::date, 'infinity'), count(*)
      FROM customer_category_facts cf JOIN shops s ON s.id = cf.shop_id
     WHERE cf.shop_id = p_shop
     GROUP BY 1, 2, 3
$$;

-- The cells as stored: folded cells plus pending deltas.
CREATE FUNCTION first_cells_stored(p_shop uuid)
RETURNS TABLE (first_day date, kind "char", key text, second_day date, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.first_day, x.kind, x.key, x.second_day, sum(x.customers)::bigint
      FROM (SELECT c.first_day, c.kind, c.key, c.second_day, c.customers
              FROM first_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.first_day, g.kind, g.key, d.second_day, d.customers
              FROM first_cell_deltas d, LATERAL first_cells_spread(d.channel, d.roles) g
             WHERE d.shop_id = p_shop) x
     GROUP BY 1, 2, 3, 4 HAVING sum(x.customers) <> 0
$$;

CREATE FUNCTION category_cells_stored(p_shop uuid)
RETURNS TABLE (first_day date, category text, second_day date, customers bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.first_day, x.category, x.second_day, sum(x.customers)::bigint
      FROM (SELECT c.first_day, c.category, c.second_day, c.customers
              FROM category_cells c WHERE c.shop_id = p_shop
            UNION ALL
            SELECT d.first_day, d.category, d.second_day, d.customers
              FROM category_cell_deltas d WHERE d.shop_id = p_shop) x
     GROUP BY 1, 2, 3 HAVING sum(x.customers) <> 0
$$;

CREATE FUNCTION first_cells_rebuild(p_shop uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM facts_cells_lock(p_shop, true);
    DELETE FROM first_cell_deltas WHERE shop_id = p_shop;
    DELETE FROM category_cell_deltas WHERE shop_id = p_shop;
    DELETE FROM first_cells WHERE shop_id = p_shop;
    DELETE FROM category_cells WHERE shop_id = p_shop;
    INSERT INTO first_cells (shop_id, first_day, kind, key, second_day, customers)
    SELECT p_shop, c.* FROM first_cells_compute(p_shop) c;
    INSERT INTO category_cells (shop_id, first_day, category, second_day, customers)
    SELECT p_shop, c.* FROM category_cells_compute(p_shop) c;
END
$$;

CREATE FUNCTION shops_first_cells_zone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM first_cells_rebuild(NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER shops_first_cells_zone AFTER UPDATE OF timezone ON shops
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION shops_first_cells_zone();

-- Fold every shop's deltas into its cells; returns the number folded.
CREATE FUNCTION first_cells_compact() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    shop   uuid;
    folded bigint := 0;
    n      bigint;
    zf     first_cells[];
    zc     category_cells[];
BEGIN
    FOR shop IN SELECT d.shop_id FROM first_cell_deltas d
                UNION SELECT d.shop_id FROM category_cell_deltas d ORDER BY 1 LOOP
        PERFORM facts_cells_lock(shop, false);
        WITH gone AS (DELETE FROM first_cell_deltas d WHERE d.shop_id = shop RETURNING d.*),
             cells AS (INSERT INTO first_cells AS c (shop_id, first_day, kind, key, second_day,
                           customers)
                       SELECT shop, g.first_day, s.kind, s.key, g.second_day, sum(g.customers)
                         FROM gone g, LATERAL first_cells_spread(g.channel, g.roles) s
                        GROUP BY g.first_day, s.kind, s.key, g.second_day
                       HAVING sum(g.customers) <> 0
                       ON CONFLICT (shop_id, first_day, kind, key, second_day) DO UPDATE
                          SET customers = c.customers + excluded.customers
                       RETURNING c.*),
             gone2 AS (DELETE FROM category_cell_deltas d WHERE d.shop_id = shop RETURNING d.*),
             cats AS (INSERT INTO category_cells AS c (shop_id, first_day, category, second_day,
                          customers)
                      SELECT shop, g.first_day, g.category, g.second_day, sum(g.customers)
                        FROM gone2 g GROUP BY g.first_day, g.category, g.second_day
                      HAVING sum(g.customers) <> 0
                      ON CONFLICT (shop_id, first_day, category, second_day) DO UPDATE
                         SET customers = c.customers + excluded.customers
                      RETURNING c.*)
        SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM gone2),
               (SELECT array_agg(x) FROM cells x WHERE x.customers = 0),
               (SELECT array_agg(x) FROM cats x WHERE x.customers = 0)
          INTO n, zf, zc;
        folded := folded + n;
        -- a statement cannot see its own upserts: the cells they emptied go
        -- now, by key (not by a scan of all the shop's cells)
        DELETE FROM first_cells c USING unnest(zf) z
         WHERE c.shop_id = shop AND c.first_day = z.first_day AND c.kind = z.kind
           AND c.key = z.key AND c.second_day = z.second_day AND c.customers = 0;
        DELETE FROM category_cells c USING unnest(zc) z
         WHERE c.shop_id = shop AND c.first_day = z.first_day AND c.category = z.category
           AND c.second_day = z.second_day AND c.customers = 0;
    END LOOP;
    RETURN folded;
END
$$;

-- Verify: stored cells against the recomputation, per differing cell.
CREATE FUNCTION first_cells_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT s.id, 'first-purchase cell differs from the facts', d.detail
      FROM shops s,
           LATERAL (SELECT coalesce(a.first_day, b.first_day) || ' to '
                           || coalesce(a.second_day, b.second_day) || ' '
                           || CASE coalesce(a.kind, b.kind) WHEN 'c' THEN 'channel ' ELSE 'role ' END
                           || coalesce(a.key, b.key) || ': stored ' || coalesce(a.customers, 0)
                           || ', computed ' || coalesce(b.customers, 0) AS detail
                      FROM first_cells_stored(s.id) a
                      FULL JOIN first_cells_compute(s.id) b
                        ON a.first_day = b.first_day AND a.kind = b.kind AND a.key = b.key
                       AND a.second_day = b.second_day
                     WHERE a.customers IS DISTINCT FROM b.customers) d
     WHERE p_shop IS NULL OR s.id = p_shop
    UNION ALL
    SELECT s.id, 'category cell differs from the facts', d.detail
      FROM shops s,
           LATERAL (SELECT 'category ''' || coalesce(a.category, b.category) || ''' '
                           || coalesce(a.first_day, b.first_day) || ' to '
                           || coalesce(a.second_day, b.second_day) || ': stored '
                           || coalesce(a.customers, 0) || ', computed ' || coalesce(b.customers, 0)
                           AS detail
                      FROM category_cells_stored(s.id) a
                      FULL JOIN category_cells_compute(s.id) b
                        ON a.first_day = b.first_day AND a.category = b.category
                       AND a.second_day = b.second_day
                     WHERE a.customers IS DISTINCT FROM b.customers) d
     WHERE p_shop IS NULL OR s.id = p_shop
$$;

-- Existing shops (no lock per shop: creating the triggers above locked
-- the facts tables against writers until this transaction commits).
INSERT INTO first_cells (shop_id, first_day, kind, key, second_day, customers)
SELECT s.id, c.* FROM shops s, LATERAL first_cells_compute(s.id) c;
INSERT INTO category_cells (shop_id, first_day, category, second_day, customers)
SELECT s.id, c.* FROM shops s, LATERAL category_cells_compute(s.id) c;
