-- 0006 purchase occasions: the repurchase facts one level down.
--
-- Every metric that counts customers in a period ("who bought in March",
-- "who bought twice in March") needs each customer's purchase occasions,
-- not just the first, second and last.  They are stored here, kept in the
-- same transaction as the customer facts by the same functions, and
-- checked by `rebuyd verify` like the rest of the facts.
CREATE TABLE purchase_occasions (
    customer_seq bigint NOT NULL REFERENCES customers (seq),
    n            integer NOT NULL CHECK (n >= 1),
    shop_id      uuid NOT NULL REFERENCES shops (id),
    started_at   timestamptz NOT NULL,
    orders       integer NOT NULL CHECK (orders >= 1),
    net          bigint NOT NULL,
    PRIMARY KEY (customer_seq, n)
);
-- periods: occasions of a shop in a time range, without visiting the heap
CREATE INDEX purchase_occasions_period ON purchase_occasions (shop_id, started_at)
    INCLUDE (customer_seq, n);
COMMENT ON TABLE purchase_occasions IS 'Qualifying purchase occasions of each customer under the shop''s rule';
COMMENT ON COLUMN purchase_occasions.customer_seq IS 'The customer';
COMMENT ON COLUMN purchase_occasions.n IS 'Ordinal: 1 = first purchase, 2 = the repurchase, ...';
COMMENT ON COLUMN purchase_occasions.shop_id IS 'Owning shop';
COMMENT ON COLUMN purchase_occasions.started_at IS 'placed_at of the order that starts the occasion';
COMMENT ON COLUMN purchase_occasions.orders IS 'Qualifying orders in the occasion';
COMMENT ON COLUMN purchase_occasions.net IS 'Sum of total - refunded over those orders';

-- cohorts: customers by the date of their first purchase
CREATE INDEX customer_facts_first ON customer_facts (shop_id, first_order_at);
CREATE INDEX customer_category_facts_first ON customer_category_facts (shop_id, first_at);

-- customer_facts_compute gains 'occasions': [{n, started_at, orders, net}].
CREATE OR REPLACE FUNCTION customer_facts_compute(p_customer bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rule      jsonb;
    excl      boolean;
    min_amt   bigint;
    win       interval;
    o         record;
    occ_start timestamptz;
    occ_no    integer := 0;
    occ_orders integer := 0;
    occ_net   bigint := 0;
    occs      jsonb := '[]';
    first_at  timestamptz;
    second_at timestamptz;
    spent     bigint := 0;
    first_ch  text;
    cats      text[] := '{}';
    roles     text[] := '{}';
    catfacts  jsonb := '{}';
    c         text;
    occ_cats  text[];
BEGIN
    SELECT s.settings -> 'repurchase_rule' INTO rule
      FROM customers cu JOIN shops s ON s.id = cu.shop_id WHERE cu.seq = p_customer;
    excl := coalesce((rule ->> 'exclude_refunded')::boolean, true);
    min_amt := coalesce((rule ->> 'min_order_amount')::bigint, 0);
    win := make_interval(hours => coalesce((rule ->> 'merge_window_hours')::integer, 0));
    FOR o IN
        SELECT od.seq, od.placed_at, od.channel, od.total, od.refunded_amount,
               ARRAY(SELECT DISTINCT l.category FROM order_lines l WHERE l.order_seq = od.seq
                     ORDER BY 1) AS categories,
               ARRAY(SELECT DISTINCT l.role FROM order_lines l WHERE l.order_seq = od.seq
                     ORDER BY 1) AS roles
          FROM orders od
         WHERE od.customer_seq = p_customer AND od.status = 'placed'
           AND od.total >= min_amt
           AND NOT (excl AND od.refunded_amount > 0 AND od.refunded_amount >= od.total)
         ORDER BY od.placed_at, od.id
    LOOP
        spent := spent + o.total - o.refunded_amount;
        IF occ_no = 0 OR win = interval '0' OR o.placed_at > occ_start + win THEN
            IF occ_no > 0 THEN
                occs := occs || jsonb_build_object('n', occ_no, 'started_at', occ_start,
                    'orders', occ_orders, 'net', occ_net);
            END IF;
            occ_no := occ_no + 1;
            occ_start := o.placed_at;
            occ_cats := '{}';
            occ_orders := 0;
            occ_net := 0;
            IF occ_no = 1 THEN first_at := o.placed_at; first_ch := o.channel; END IF;
            IF occ_no = 2 THEN second_at := o.placed_at; END IF;
        END IF;
        occ_orders := occ_orders + 1;
        occ_net := occ_net + o.total - o.refunded_amount;
        IF occ_no = 1 THEN
            cats := ARRAY(SELECT DISTINCT x FROM unnest(cats || o.categories) x ORDER BY 1);
            roles := ARRAY(SELECT DISTINCT x FROM unnest(roles || o.roles) x ORDER BY 1);
        END IF;
        -- each category counts once per occasion
        FOREACH c IN ARRAY o.categories LOOP
            CONTINUE WHEN c = ANY (occ_cats);
            occ_cats := occ_cats || c;
            IF catfacts ? c THEN
                catfacts := jsonb_set(catfacts, ARRAY[c], (catfacts -> c) || jsonb_build_object(
                    'occasion_count', (catfacts -> c ->> 'occasion_count')::integer + 1,
                    'second_at', CASE WHEN catfacts -> c ->> 'second_at' IS NULL
                                      THEN to_jsonb(occ_start) ELSE catfacts -> c -> 'second_at' END));
            ELSE
                catfacts := catfacts || jsonb_build_object(c, jsonb_build_object(
                    'first_at', occ_start, 'second_at', NULL, 'occasion_count', 1));
            END IF;
        END LOOP;
    END LOOP;
    IF occ_no > 0 THEN
        occs := occs || jsonb_build_object('n', occ_no, 'started_at', occ_start,
            'orders', occ_orders, 'net', occ_net);
    END IF;
    RETURN jsonb_build_object(
        'order_count', occ_no, 'first_order_at', first_at, 'second_order_at', second_at,
        'last_order_at', occ_start, 'total_spent', spent, 'first_order_channel', first_ch,
        'first_order_categories', to_jsonb(cats), 'first_order_roles', to_jsonb(roles),
        'categories', catfacts, 'occasions', occs);
END
$$;

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
                'started_at', po.started_at, 'orders', po.orders, 'net', po.net) ORDER BY po.n)
            FROM purchase_occasions po WHERE po.customer_seq = p_customer), '[]'))
    FROM (SELECT p_customer AS seq) k
    LEFT JOIN customer_facts f ON f.customer_seq = k.seq
$$;

-- Store the occasions of one customer: only rows that changed are written
-- (a new order at the end of the history is one insert).
CREATE FUNCTION purchase_occasions_store(p_customer bigint, p_shop uuid, p_occs jsonb)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM purchase_occasions po WHERE po.customer_seq = p_customer
       AND NOT EXISTS (SELECT FROM jsonb_array_elements(p_occs) e
                        WHERE (e ->> 'n')::integer = po.n
                          AND (e ->> 'started_at')::timestamptz = po.started_at
                          AND (e ->> 'orders')::integer = po.orders
                          AND (e ->> 'net')::bigint = po.net);
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net)
    SELECT p_customer, (e ->> 'n')::integer, p_shop, (e ->> 'started_at')::timestamptz,
           (e ->> 'orders')::integer, (e ->> 'net')::bigint
      FROM jsonb_array_elements(p_occs) e
    ON CONFLICT (customer_seq, n) DO NOTHING;
$$;
COMMENT ON FUNCTION purchase_occasions_store(bigint, uuid, jsonb) IS
    'Make the stored occasions of one customer equal p_occs, writing only the differences';

-- The write paths keep the occasions with the rest of the facts.
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
    DELETE FROM customer_category_facts WHERE customer_seq = p_customer;
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
      FROM jsonb_each(f -> 'categories') e;
END
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
    INSERT INTO purchase_occasions (customer_seq, n, shop_id, started_at, orders, net)
    SELECT customer_seq, n, shop_id, placed_at, 1, net FROM facts_q;

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

-- Existing shops: fill the occasions from the orders.
SELECT customer_facts_refresh_many(ARRAY(SELECT seq FROM customers));
