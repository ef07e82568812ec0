-- Fewer checks per row written by an order, and fewer rows appended by a
-- bulk refresh (issue 3: the import's orders and facts phases).
--
-- Customer keys.  orders, purchase_occasions, customer_facts and
-- customer_category_facts each checked two foreign keys per row: its
-- customer, and its shop.  Each check is a row trigger: an index probe
-- and a KEY SHARE lock on the parent row, 5-10 us.  One composite key, (shop_id, customer_seq) to the
-- customer's (shop_id, seq), checks both and more: that the row belongs to
-- its customer's shop, which the two single keys did not.  The shop's
-- existence follows (customers.shop_id references shops).  Every order of
-- a shop also no longer locks the shop's one row (concurrent orders made
-- that lock a multixact).
--
-- Locks.  Each migration is one transaction.  This one builds the unique
-- index (customers' writes wait, about 1 s at 1M customers) and adds the
-- keys NOT VALID (a moment's SHARE ROW EXCLUSIVE on each table).  0024
-- validates them, which reads each table once (about 20 s at 10M orders)
-- under locks that let readers and writers go on, and only then drops the
-- single keys and the old index: ACCESS EXCLUSIVE, held from the drops to
-- its commit, a moment.

-- Grouped deltas.  facts_deltas_append (0022) appended one delta row per
-- facts row, category fact and occasion.  Every reader and the fold sum
-- the deltas' counts by their other columns (a row of k counts as k rows
-- of 1), so rows with the same key are appended as one, their counts
-- summed: far fewer rows for the facts and categories.

CREATE UNIQUE INDEX customers_shop_seq_key ON customers (shop_id, seq);

-- NOT VALID: checked for new rows from here on; 0024 validates the rows
-- already there and drops the single keys
ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (shop_id, customer_seq)
    REFERENCES customers (shop_id, seq) NOT VALID;
ALTER TABLE purchase_occasions ADD CONSTRAINT purchase_occasions_customer_fkey
    FOREIGN KEY (shop_id, customer_seq) REFERENCES customers (shop_id, seq) NOT VALID;
ALTER TABLE customer_facts ADD CONSTRAINT customer_facts_customer_fkey
    FOREIGN KEY (shop_id, customer_seq) REFERENCES customers (shop_id, seq) NOT VALID;
ALTER TABLE customer_category_facts ADD CONSTRAINT customer_category_facts_customer_fkey
    FOREIGN KEY (shop_id, customer_seq) REFERENCES customers (shop_id, seq) NOT VALID;

-- 0022's appends, each grouped by the delta's key.
CREATE OR REPLACE FUNCTION facts_deltas_append(p_customers bigint[], p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    shop uuid;
BEGIN
    FOR shop IN SELECT DISTINCT cu.shop_id FROM customers cu
                 WHERE cu.seq = ANY (p_customers) ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('facts_cells ' || shop, 0));
    END LOOP;
    INSERT INTO facts_cell_deltas (shop_id, last_day, order_count, bucket, interval_days,
        customers, spent)
    SELECT d.shop_id, d.last_day, d.order_count, d.bucket, d.interval_days, count(*) * p_sign,
           sum(d.spent) * p_sign
      FROM (SELECT f.shop_id, (f.last_order_at AT TIME ZONE s.timezone)::date AS last_day,
                   f.order_count, rfm_spend_bucket(f.total_spent) AS bucket,
                   f.total_spent AS spent,
                   (f.second_order_at AT TIME ZONE s.timezone)::date
                   - (f.first_order_at AT TIME ZONE s.timezone)::date AS interval_days
              FROM customer_facts f JOIN shops s ON s.id = f.shop_id
             WHERE f.customer_seq = ANY (p_customers)) d
     GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO first_cell_deltas (shop_id, first_day, channel, roles, second_day, customers)
    SELECT f.shop_id, (f.first_order_at AT TIME ZONE s.timezone)::date, f.first_order_channel,
           f.first_order_roles,
           coalesce((f.second_order_at AT TIME ZONE s.timezone)::date, 'infinity'),
           count(*) * p_sign
      FROM customer_facts f JOIN shops s ON s.id = f.shop_id
     WHERE f.customer_seq = ANY (p_customers)
     GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO interval_deltas (shop_id, category, days, customers)
    SELECT c.shop_id, c.category,
           (c.second_at AT TIME ZONE s.timezone)::date - (c.first_at AT TIME ZONE s.timezone)::date,
           count(*) * p_sign
      FROM customer_category_facts c JOIN shops s ON s.id = c.shop_id
     WHERE c.customer_seq = ANY (p_customers) AND c.second_at IS NOT NULL
     GROUP BY 1, 2, 3;
    INSERT INTO category_cell_deltas (shop_id, first_day, category, second_day, customers)
    SELECT c.shop_id, (c.first_at AT TIME ZONE s.timezone)::date, c.category,
           coalesce((c.second_at AT TIME ZONE s.timezone)::date, 'infinity'), count(*) * p_sign
      FROM customer_category_facts c JOIN shops s ON s.id = c.shop_id
     WHERE c.customer_seq = ANY (p_customers)
     GROUP BY 1, 2, 3, 4;
    -- ungrouped: an occasion's key holds three dates, so few rows share one
    -- (1M occasions, 846k keys) and grouping cost more than it saved
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

-- The bulk refresh of 0022, with fewer passes: the facts and the occasions
-- come from one window pass over the orders (they were a hash aggregate and
-- a second sort, 6.8 s and 3 s of the facts phase at 1M orders), and the
-- first orders' categories and roles from one pass over their lines (a
-- lookup per customer cost about 50 us each).
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
    -- one sort of the orders serves the facts and the occasions: each row
    -- carries its customer's count, spend and last order, and its neighbours
    CREATE TEMP TABLE facts_q ON COMMIT DROP AS
    SELECT o.seq, o.customer_seq, cu.shop_id, o.placed_at, o.channel,
           o.total - o.refunded_amount AS net,
           row_number() OVER w AS n,
           count(*) OVER c AS cnt,
           sum(o.total - o.refunded_amount) OVER c AS spent,
           max(o.placed_at) OVER c AS last_at,
           lead(o.placed_at) OVER w AS next_at,
           lag(o.placed_at) OVER w AS prev_at,
           lag(o.placed_at, 2) OVER w AS prev2_at,
           first_value(o.placed_at) OVER w AS first_at
      FROM orders o
      JOIN customers cu ON cu.seq = o.customer_seq
      JOIN shops s ON s.id = cu.shop_id
     WHERE o.customer_seq = ANY (simple) AND o.status = 'placed'
       AND o.total >= coalesce((s.settings #>> '{repurchase_rule,min_order_amount}')::bigint, 0)
       AND NOT (coalesce((s.settings #>> '{repurchase_rule,exclude_refunded}')::boolean, true)
                AND o.refunded_amount > 0 AND o.refunded_amount >= o.total)
    WINDOW c AS (PARTITION BY o.customer_seq), w AS (c ORDER BY o.placed_at, o.id);
    ANALYZE facts_q;

    -- a customer's facts are on its first order's row
    INSERT INTO customer_facts (customer_seq, shop_id, order_count, first_order_at,
        second_order_at, last_order_at, total_spent, first_order_channel,
        first_order_categories, first_order_roles)
    SELECT q.customer_seq, q.shop_id, q.cnt, q.placed_at, q.next_at, q.last_at, q.spent,
           q.channel, coalesce(fl.categories, '{}'), coalesce(fl.roles, '{}')
      FROM facts_q q
      LEFT JOIN (SELECT l.order_seq,
                        array_agg(DISTINCT l.category ORDER BY l.category) AS categories,
                        array_agg(DISTINCT l.role ORDER BY l.role) AS roles
                   FROM order_lines l
                  WHERE l.order_seq IN (SELECT f.seq FROM facts_q f WHERE f.n = 1)
                  GROUP BY l.order_seq) fl ON fl.order_seq = q.seq
     WHERE q.n = 1;

    -- each order is an occasion
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net,
        prev_started_at, prev2_started_at, first_started_at)
    SELECT customer_seq, n, shop_id, placed_at, 1, net, prev_at, prev2_at, first_at
      FROM facts_q;

    -- each order is an occasion: a category counts once per order (which of
    -- two orders at the same instant comes first changes no time: seq decides)
    INSERT INTO customer_category_facts (customer_seq, category, shop_id, first_at, second_at,
        occasion_count)
    SELECT customer_seq, category, shop_id,
           min(placed_at) FILTER (WHERE k = 1), min(placed_at) FILTER (WHERE k = 2),
           count(*)::integer
      FROM (SELECT d.customer_seq, d.shop_id, d.category, d.placed_at,
                   row_number() OVER (PARTITION BY d.customer_seq, d.category
                                      ORDER BY d.placed_at, d.seq) AS k
              FROM (SELECT DISTINCT q.customer_seq, q.shop_id, q.placed_at, q.seq, l.category
                      FROM facts_q q JOIN order_lines l ON l.order_seq = q.seq) d) r
     GROUP BY customer_seq, category, shop_id;
    DROP TABLE facts_q;
    PERFORM set_config('rebuy.bulk_deltas', 'off', true);
    PERFORM facts_deltas_append(simple, 1);
    RETURN coalesce(array_length(p_customers, 1), 0);
END
$$;
