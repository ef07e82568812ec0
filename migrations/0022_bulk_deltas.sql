-- A bulk refresh (import, repurchase-rule change: customer_facts_refresh_many)
-- deletes and rewrites the occasions, facts and category facts of many
-- customers at once.  The row triggers of 0018-0020 appended one delta per
-- row written, each a PL/pgSQL call with its own INSERT: at 1M imported
-- orders, 1M occasions and their category facts, the larger part of the
-- import's facts phase.  Here the bulk refresh appends the same deltas
-- set-based, an INSERT ... SELECT per table: -1 for every row before it is
-- deleted, +1 for every row after it is written, while the row triggers
-- stand aside (the transaction-local setting rebuy.bulk_deltas = 'on').
-- The shared shop locks are the triggers' (taken before the rows are read,
-- so a zone change committed while we waited is seen).  The vip trigger is
-- deferred to commit and fires once per facts row; it stays.

-- The deltas of the customers' stored rows, with sign -1 or +1: the same
-- rows facts_cells_track, first_cells_track, interval_cells_track,
-- category_cells_track and occasion_cells_track append for each.  A change
-- to one of those formulas must be made here too: rebuyd verify (and the
-- rule-change checks of tests/integration/facts-cells.test.js) show a
-- difference.
CREATE FUNCTION facts_deltas_append(p_customers bigint[], p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid;
BEGIN
    FOR shop IN SELECT DISTINCT cu.shop_id FROM customers cu
                 WHERE cu.seq = ANY (p_customers) ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    END LOOP;
    INSERT INTO facts_cell_deltas (shop_id, last_day, order_count, bucket, customers, spent,
        interval_days)
    SELECT f.shop_id, (f.last_order_at AT TIME ZONE s.timezone)::date, f.order_count,
           rfm_spend_bucket(f.total_spent), p_sign, p_sign * f.total_spent,
           (f.second_order_at AT TIME ZONE s.timezone)::date
           - (f.first_order_at AT TIME ZONE s.timezone)::date
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id
     WHERE f.customer_seq = ANY (p_customers);
    INSERT INTO first_cell_deltas (shop_id, first_day, channel, roles, second_day, customers)
    SELECT f.shop_id, (f.first_order_at AT TIME ZONE s.timezone)::date, f.first_order_channel,
           f.first_order_roles,
           coalesce((f.second_order_at AT TIME ZONE s.timezone)::date, 'infinity'), p_sign
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id
     WHERE f.customer_seq = ANY (p_customers);
    INSERT INTO interval_deltas (shop_id, category, days, customers)
    SELECT c.shop_id, c.category,
           (c.second_at AT TIME ZONE s.timezone)::date - (c.first_at AT TIME ZONE s.timezone)::date,
           p_sign
      FROM customer_category_facts c JOIN shops s ON s.id = c.shop_id
     WHERE c.customer_seq = ANY (p_customers) AND c.second_at IS NOT NULL;
    INSERT INTO category_cell_deltas (shop_id, first_day, category, second_day, customers)
    SELECT c.shop_id, (c.first_at AT TIME ZONE s.timezone)::date, c.category,
           coalesce((c.second_at AT TIME ZONE s.timezone)::date, 'infinity'), p_sign
      FROM customer_category_facts c JOIN shops s ON s.id = c.shop_id
     WHERE c.customer_seq = ANY (p_customers);
    INSERT INTO occasion_deltas (shop_id, day, n, prev_day, prev2_day, first_day, occasions,
        orders, net)
    SELECT o.shop_id, (o.started_at AT TIME ZONE s.timezone)::date, least(o.n, 3),
           (o.prev_started_at AT TIME ZONE s.timezone)::date,
           (o.prev2_started_at AT TIME ZONE s.timezone)::date,
           (o.first_started_at AT TIME ZONE s.timezone)::date,
           p_sign, p_sign * o.orders, p_sign * o.net
      FROM purchase_occasions o JOIN shops s ON s.id = o.shop_id
     WHERE o.customer_seq = ANY (p_customers);
END
$$;
COMMENT ON FUNCTION facts_deltas_append(bigint[], integer) IS
    'Append, set-based, the histogram deltas of these customers'' stored facts, category facts and occasions, with sign p_sign (what their row triggers append one by one)';

-- The row triggers, again, standing aside while a bulk refresh appends
-- (OR REPLACE: no ACCESS EXCLUSIVE lock, readers go on).
CREATE OR REPLACE TRIGGER customer_facts_cells AFTER INSERT OR UPDATE OR DELETE ON customer_facts
    FOR EACH ROW WHEN (current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION facts_cells_track();
CREATE OR REPLACE TRIGGER customer_facts_first_cells AFTER INSERT OR UPDATE OR DELETE ON customer_facts
    FOR EACH ROW WHEN (current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION first_cells_track();
CREATE OR REPLACE TRIGGER customer_category_facts_insert AFTER INSERT ON customer_category_facts
    FOR EACH ROW WHEN (NEW.second_at IS NOT NULL
                       AND current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION interval_cells_track();
CREATE OR REPLACE TRIGGER customer_category_facts_delete AFTER DELETE ON customer_category_facts
    FOR EACH ROW WHEN (OLD.second_at IS NOT NULL
                       AND current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION interval_cells_track();
CREATE OR REPLACE TRIGGER customer_category_facts_cells AFTER INSERT OR DELETE ON customer_category_facts
    FOR EACH ROW WHEN (current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION category_cells_track();
CREATE OR REPLACE TRIGGER purchase_occasions_cells AFTER INSERT OR UPDATE OR DELETE ON purchase_occasions
    FOR EACH ROW WHEN (current_setting('rebuy.bulk_deltas', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION occasion_cells_track();

-- The bulk refresh of 0019, its deltas appended set-based around the
-- rewrite of the customers with each order its own occasion.
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

    -- the switch is ours alone: set by someone else, their orders would go uncounted
    IF current_setting('rebuy.bulk_deltas', true) = 'on' THEN
        RAISE EXCEPTION 'rebuy.bulk_deltas is on outside a bulk refresh';
    END IF;
    PERFORM facts_deltas_append(simple, -1);
    PERFORM set_config('rebuy.bulk_deltas', 'on', true);
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
    PERFORM set_config('rebuy.bulk_deltas', 'off', true);
    PERFORM facts_deltas_append(simple, 1);
    RETURN coalesce(array_length(p_customers, 1), 0);
END
$$;
