-- 0004 set-based facts for many customers at once (imports, rule changes).
--
-- customer_facts_compute walks one customer's orders in a loop, which is
-- right for one order change and slow for a million customers.  When the
-- shop merges nothing (merge_window_hours = 0, the default) every order is
-- its own purchase occasion and the facts are plain window functions; this
-- computes them for a whole set of customers in a few statements.  Shops
-- that merge occasions keep the loop.  Either way the stored facts must
-- equal customer_facts_compute: `rebuyd verify` checks it.
CREATE FUNCTION customer_facts_refresh_many(p_customers bigint[]) RETURNS integer
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
COMMENT ON FUNCTION customer_facts_refresh_many(bigint[]) IS
    'Store the facts of many customers at once; equal to customer_facts_compute for each';
