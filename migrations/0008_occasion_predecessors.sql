-- 0008 each purchase occasion knows when the two before it started.
--
-- Counting distinct customers over a date range ("who bought in March",
-- "who bought twice") used to group a period's occasions by customer.
-- With the start of the previous two occasions on each row, every such
-- count is a plain filtered count over the period's index entries, with
-- no grouping and no lookups:
--   customers active in [t0, t1)    = occasions in it with n = 1 or prev < t0
--   of them with >= 2 in the period = occasions with prev >= t0
--                                     - occasions with prev2 >= t0
-- (each customer with k >= 2 occasions in the period has k - 1 consecutive
-- pairs and k - 2 triples in it).
ALTER TABLE purchase_occasions
    ADD COLUMN prev_started_at timestamptz,
    ADD COLUMN prev2_started_at timestamptz;
COMMENT ON COLUMN purchase_occasions.prev_started_at IS 'started_at of occasion n - 1 (NULL for the first)';
COMMENT ON COLUMN purchase_occasions.prev2_started_at IS 'started_at of occasion n - 2 (NULL for the first two)';

UPDATE purchase_occasions po SET prev_started_at = x.p1, prev2_started_at = x.p2
  FROM (SELECT customer_seq, n, lag(started_at) OVER w AS p1, lag(started_at, 2) OVER w AS p2
          FROM purchase_occasions WINDOW w AS (PARTITION BY customer_seq ORDER BY n)) x
 WHERE x.customer_seq = po.customer_seq AND x.n = po.n AND x.n >= 2;

ALTER TABLE purchase_occasions
    ADD CONSTRAINT purchase_occasions_prev CHECK ((n = 1) = (prev_started_at IS NULL)
        AND (n <= 2) = (prev2_started_at IS NULL)
        AND prev_started_at <= started_at AND prev2_started_at <= prev_started_at);

CREATE INDEX purchase_occasions_period2 ON purchase_occasions (shop_id, started_at)
    INCLUDE (customer_seq, n, orders, net, prev_started_at, prev2_started_at);
DROP INDEX purchase_occasions_period;
ALTER INDEX purchase_occasions_period2 RENAME TO purchase_occasions_period;

-- The stored form verify compares: a row whose prev columns do not match
-- its neighbours shows up as a difference.
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
                         AND po.prev2_started_at IS NOT DISTINCT FROM po.p2 THEN '{}'::jsonb
                        ELSE jsonb_build_object('prev_started_at', po.prev_started_at,
                                                'prev2_started_at', po.prev2_started_at) END
                ORDER BY po.n)
            FROM (SELECT o.*, lag(o.started_at) OVER w AS p1, lag(o.started_at, 2) OVER w AS p2
                    FROM purchase_occasions o WHERE o.customer_seq = p_customer
                  WINDOW w AS (ORDER BY o.n)) po), '[]'))
    FROM (SELECT p_customer AS seq) k
    LEFT JOIN customer_facts f ON f.customer_seq = k.seq
$$;

-- Store the occasions of one customer, writing only rows that changed; a
-- row whose predecessors moved counts as changed.
-- The occasions of customer_facts_compute as rows, with their predecessors.
CREATE FUNCTION purchase_occasions_rows(p_occs jsonb)
RETURNS TABLE (n integer, started_at timestamptz, orders integer, net bigint,
               p1 timestamptz, p2 timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT x.n, x.started_at, x.orders, x.net, lag(x.started_at) OVER w, lag(x.started_at, 2) OVER w
      FROM (SELECT (e ->> 'n')::integer AS n, (e ->> 'started_at')::timestamptz AS started_at,
                   (e ->> 'orders')::integer AS orders, (e ->> 'net')::bigint AS net
              FROM jsonb_array_elements(p_occs) e) x
    WINDOW w AS (ORDER BY x.n)
$$;

CREATE OR REPLACE FUNCTION purchase_occasions_store(p_customer bigint, p_shop uuid, p_occs jsonb)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM purchase_occasions po WHERE po.customer_seq = p_customer
       AND NOT EXISTS (SELECT FROM purchase_occasions_rows(p_occs) e
                        WHERE e.n = po.n AND e.started_at = po.started_at
                          AND e.orders = po.orders AND e.net = po.net
                          AND e.p1 IS NOT DISTINCT FROM po.prev_started_at
                          AND e.p2 IS NOT DISTINCT FROM po.prev2_started_at);
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net,
        prev_started_at, prev2_started_at)
    SELECT p_customer, e.n, p_shop, e.started_at, e.orders, e.net, e.p1, e.p2
      FROM purchase_occasions_rows(p_occs) e
    ON CONFLICT (customer_seq, n) DO NOTHING;
$$;

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
        prev_started_at, prev2_started_at)
    SELECT customer_seq, n, shop_id, placed_at, 1, net,
           lag(placed_at) OVER w, lag(placed_at, 2) OVER w
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

