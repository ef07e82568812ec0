-- 0002 orders: orders with lines and refunds, the shop's repurchase rule,
-- and the repurchase facts every metric reads.

ALTER TABLE shops ADD COLUMN settings jsonb NOT NULL DEFAULT
    '{"repurchase_rule": {"exclude_refunded": true, "min_order_amount": 0, "merge_window_hours": 0}}';
COMMENT ON COLUMN shops.settings IS 'Shop settings; repurchase_rule decides which orders count as purchases';

CREATE TABLE orders (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id         uuid NOT NULL REFERENCES shops (id),
    id              text NOT NULL CHECK (id ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    customer_seq    bigint NOT NULL REFERENCES customers (seq),
    placed_at       timestamptz NOT NULL,
    channel         text NOT NULL,
    currency        char(3) NOT NULL,
    shipping        bigint NOT NULL CHECK (shipping >= 0),
    discount        bigint NOT NULL CHECK (discount >= 0),
    total           bigint NOT NULL CHECK (total >= 0),
    status          text NOT NULL DEFAULT 'placed' CHECK (status IN ('placed', 'cancelled')),
    cancelled_at    timestamptz,
    refunded_amount bigint NOT NULL DEFAULT 0 CHECK (refunded_amount BETWEEN 0 AND total),
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, id)
);
CREATE INDEX orders_customer ON orders (customer_seq, placed_at);
COMMENT ON TABLE orders IS 'Orders as the storefront placed them, addressed by the storefront''s id';
COMMENT ON COLUMN orders.seq IS 'Internal order number';
COMMENT ON COLUMN orders.shop_id IS 'Owning shop';
COMMENT ON COLUMN orders.id IS 'The storefront''s order id';
COMMENT ON COLUMN orders.customer_seq IS 'The customer who placed it';
COMMENT ON COLUMN orders.placed_at IS 'When the customer placed the order';
COMMENT ON COLUMN orders.channel IS 'Sales channel (web, tmall, douyin, store-12, ...)';
COMMENT ON COLUMN orders.currency IS 'ISO 4217; always the shop''s currency';
COMMENT ON COLUMN orders.shipping IS 'Shipping charged, minor units';
COMMENT ON COLUMN orders.discount IS 'Order-level discount, minor units';
COMMENT ON COLUMN orders.total IS 'What the customer paid: lines - line discounts + shipping - discount';
COMMENT ON COLUMN orders.status IS 'placed | cancelled';
COMMENT ON COLUMN orders.cancelled_at IS 'When the order was cancelled';
COMMENT ON COLUMN orders.refunded_amount IS 'Sum of refunds; never above total';
COMMENT ON COLUMN orders.fingerprint IS 'SHA-256 of the canonical order body: a resend must match it';
COMMENT ON COLUMN orders.created_at IS 'When rebuy received the order';

CREATE TABLE order_lines (
    order_seq   bigint NOT NULL REFERENCES orders (seq),
    line_no     integer NOT NULL,
    sku         text NOT NULL,
    name        text,
    category    text NOT NULL,
    role        text NOT NULL CHECK (role IN ('traffic', 'activity', 'regular')),
    quantity    bigint NOT NULL CHECK (quantity > 0),
    unit_price  bigint NOT NULL CHECK (unit_price >= 0),
    discount    bigint NOT NULL CHECK (discount >= 0),
    PRIMARY KEY (order_seq, line_no)
);
COMMENT ON TABLE order_lines IS 'Line items of an order, in the order the storefront sent them';
COMMENT ON COLUMN order_lines.order_seq IS 'The order';
COMMENT ON COLUMN order_lines.line_no IS 'Position, from 1';
COMMENT ON COLUMN order_lines.sku IS 'Stock keeping unit';
COMMENT ON COLUMN order_lines.name IS 'Product name as sold';
COMMENT ON COLUMN order_lines.category IS 'Product category (repurchase is measured per category)';
COMMENT ON COLUMN order_lines.role IS 'Product role: traffic | activity | regular';
COMMENT ON COLUMN order_lines.quantity IS 'Units';
COMMENT ON COLUMN order_lines.unit_price IS 'Price per unit, minor units';
COMMENT ON COLUMN order_lines.discount IS 'Discount on the line, minor units';

CREATE TABLE refunds (
    order_seq   bigint NOT NULL REFERENCES orders (seq),
    id          text NOT NULL CHECK (id ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    amount      bigint NOT NULL CHECK (amount > 0),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_seq, id)
);
COMMENT ON TABLE refunds IS 'Money returned on an order; their sum is orders.refunded_amount';
COMMENT ON COLUMN refunds.order_seq IS 'The order refunded';
COMMENT ON COLUMN refunds.id IS 'The storefront''s refund id: a resend is a no-op';
COMMENT ON COLUMN refunds.amount IS 'Minor units returned';
COMMENT ON COLUMN refunds.reason IS 'Why, as the storefront said';
COMMENT ON COLUMN refunds.created_at IS 'When the refund was recorded';

CREATE TABLE customer_facts (
    customer_seq           bigint PRIMARY KEY REFERENCES customers (seq),
    shop_id                uuid NOT NULL REFERENCES shops (id),
    order_count            integer NOT NULL,
    first_order_at         timestamptz,
    second_order_at        timestamptz,
    last_order_at          timestamptz,
    total_spent            bigint NOT NULL,
    first_order_channel    text,
    first_order_categories text[] NOT NULL,
    first_order_roles      text[] NOT NULL
);
CREATE INDEX customer_facts_shop ON customer_facts (shop_id);
COMMENT ON TABLE customer_facts IS 'Repurchase facts per customer under the shop''s rule; equal to customer_facts_compute()';
COMMENT ON COLUMN customer_facts.customer_seq IS 'The customer';
COMMENT ON COLUMN customer_facts.shop_id IS 'Owning shop';
COMMENT ON COLUMN customer_facts.order_count IS 'Qualifying purchase occasions';
COMMENT ON COLUMN customer_facts.first_order_at IS 'Start of the first occasion';
COMMENT ON COLUMN customer_facts.second_order_at IS 'Start of the second occasion (the repurchase)';
COMMENT ON COLUMN customer_facts.last_order_at IS 'Start of the last occasion';
COMMENT ON COLUMN customer_facts.total_spent IS 'Sum of total - refunded over qualifying orders';
COMMENT ON COLUMN customer_facts.first_order_channel IS 'Channel of the first qualifying order';
COMMENT ON COLUMN customer_facts.first_order_categories IS 'Distinct categories of the first occasion, sorted';
COMMENT ON COLUMN customer_facts.first_order_roles IS 'Distinct product roles of the first occasion, sorted';

CREATE TABLE customer_category_facts (
    customer_seq    bigint NOT NULL REFERENCES customers (seq),
    category        text NOT NULL,
    shop_id         uuid NOT NULL REFERENCES shops (id),
    first_at        timestamptz NOT NULL,
    second_at       timestamptz,
    occasion_count  integer NOT NULL,
    PRIMARY KEY (customer_seq, category)
);
CREATE INDEX customer_category_facts_shop ON customer_category_facts (shop_id, category);
COMMENT ON TABLE customer_category_facts IS 'Per customer and category: first and second purchase occasion';
COMMENT ON COLUMN customer_category_facts.customer_seq IS 'The customer';
COMMENT ON COLUMN customer_category_facts.category IS 'Product category';
COMMENT ON COLUMN customer_category_facts.shop_id IS 'Owning shop';
COMMENT ON COLUMN customer_category_facts.first_at IS 'Start of the first occasion with this category';
COMMENT ON COLUMN customer_category_facts.second_at IS 'Start of the second occasion with this category';
COMMENT ON COLUMN customer_category_facts.occasion_count IS 'Occasions that included this category';

-- The facts of one customer, computed from the orders under the shop's
-- rule, as one JSON document.  The write path stores it; verify compares
-- it with what is stored.  Orders are walked in (placed_at, id) order, so
-- the result does not depend on the order in which they arrived.
CREATE FUNCTION customer_facts_compute(p_customer bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rule      jsonb;
    excl      boolean;
    min_amt   bigint;
    win       interval;
    o         record;
    occ_start timestamptz;
    occ_no    integer := 0;
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
            occ_no := occ_no + 1;
            occ_start := o.placed_at;
            occ_cats := '{}';
            IF occ_no = 1 THEN first_at := o.placed_at; first_ch := o.channel; END IF;
            IF occ_no = 2 THEN second_at := o.placed_at; END IF;
        END IF;
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
    RETURN jsonb_build_object(
        'order_count', occ_no, 'first_order_at', first_at, 'second_order_at', second_at,
        'last_order_at', occ_start, 'total_spent', spent, 'first_order_channel', first_ch,
        'first_order_categories', to_jsonb(cats), 'first_order_roles', to_jsonb(roles),
        'categories', catfacts);
END
$$;
COMMENT ON FUNCTION customer_facts_compute(bigint) IS 'Repurchase facts of one customer recomputed from its orders';

-- What is stored for one customer, in the shape customer_facts_compute returns.
CREATE FUNCTION customer_facts_stored(p_customer bigint) RETURNS jsonb
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
            FROM customer_category_facts cf WHERE cf.customer_seq = p_customer), '{}'))
    FROM (SELECT p_customer AS seq) k
    LEFT JOIN customer_facts f ON f.customer_seq = k.seq
$$;
COMMENT ON FUNCTION customer_facts_stored(bigint) IS 'Stored facts of one customer, comparable with customer_facts_compute';

-- Recompute and store the facts of one customer (same transaction as the change).
CREATE FUNCTION customer_facts_refresh(p_customer bigint) RETURNS void
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
COMMENT ON FUNCTION customer_facts_refresh(bigint) IS 'Store customer_facts_compute for one customer';

-- Customers now carry their facts.
CREATE OR REPLACE FUNCTION customer_json(c customers) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'name', c.name, 'email', c.email, 'phone', c.phone,
        'tags', to_json(c.tags),
        'consent', json_build_object(
            'email', json_build_object('granted', c.consent_email, 'updated_at', rfc3339(c.consent_email_at)),
            'sms', json_build_object('granted', c.consent_sms, 'updated_at', rfc3339(c.consent_sms_at)),
            'wechat', json_build_object('granted', c.consent_wechat, 'updated_at', rfc3339(c.consent_wechat_at))),
        'attributes', c.attributes, 'created_at', rfc3339(c.created_at), 'updated_at', rfc3339(c.updated_at),
        'erased_at', rfc3339(c.erased_at),
        'facts', (SELECT json_build_object(
            'order_count', coalesce(f.order_count, 0),
            'first_order_at', rfc3339(f.first_order_at),
            'second_order_at', rfc3339(f.second_order_at),
            'last_order_at', rfc3339(f.last_order_at),
            'days_since_last_order', floor(extract(epoch FROM now() - f.last_order_at) / 86400)::integer,
            'total_spent', coalesce(f.total_spent, 0),
            'average_order_value', f.total_spent / nullif(f.order_count, 0),
            'first_order_channel', f.first_order_channel,
            'first_order_categories', to_json(coalesce(f.first_order_categories, '{}')),
            'first_order_roles', to_json(coalesce(f.first_order_roles, '{}')))
            FROM (SELECT c.seq AS seq) k LEFT JOIN customer_facts f ON f.customer_seq = k.seq))
$$;

CREATE OR REPLACE FUNCTION shop_json(s shops) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'name', s.name, 'currency', s.currency,
        'timezone', s.timezone, 'settings', s.settings,
        'created_at', rfc3339(s.created_at), 'updated_at', rfc3339(s.updated_at))
$$;

CREATE FUNCTION order_json(o orders) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', o.id,
        'customer_id', (SELECT cu.id FROM customers cu WHERE cu.seq = o.customer_seq),
        'placed_at', rfc3339(o.placed_at), 'channel', o.channel, 'currency', o.currency,
        'lines', (SELECT coalesce(json_agg(json_build_object('sku', l.sku, 'name', l.name,
                'category', l.category, 'role', l.role, 'quantity', l.quantity,
                'unit_price', l.unit_price, 'discount', l.discount,
                'line_total', l.quantity * l.unit_price - l.discount) ORDER BY l.line_no), '[]')
            FROM order_lines l WHERE l.order_seq = o.seq),
        'shipping', o.shipping, 'discount', o.discount, 'total', o.total,
        'status', o.status, 'cancelled_at', rfc3339(o.cancelled_at),
        'refunded_amount', o.refunded_amount,
        'refunds', (SELECT coalesce(json_agg(json_build_object('id', r.id, 'amount', r.amount,
                'reason', r.reason, 'created_at', rfc3339(r.created_at))
                ORDER BY r.created_at, r.id), '[]')
            FROM refunds r WHERE r.order_seq = o.seq),
        'qualifying', (SELECT o.status = 'placed'
                AND o.total >= coalesce((s.settings #>> '{repurchase_rule,min_order_amount}')::bigint, 0)
                AND NOT (coalesce((s.settings #>> '{repurchase_rule,exclude_refunded}')::boolean, true)
                         AND o.refunded_amount > 0 AND o.refunded_amount >= o.total)
            FROM shops s WHERE s.id = o.shop_id),
        'created_at', rfc3339(o.created_at))
$$;
COMMENT ON FUNCTION order_json(orders) IS 'The Order object of the API';
