-- 0003 fulfilment events on orders, and the index order lists walk.

ALTER TABLE orders
    ADD COLUMN shipped_at   timestamptz,
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN completed_at timestamptz;
COMMENT ON COLUMN orders.shipped_at IS 'When the order was shipped (latest shipped event)';
COMMENT ON COLUMN orders.delivered_at IS 'When the order arrived (latest delivered event)';
COMMENT ON COLUMN orders.completed_at IS 'When the order was completed (latest completed event)';

CREATE INDEX orders_shop_seq ON orders (shop_id, seq);

CREATE OR REPLACE FUNCTION order_json(o orders) RETURNS json LANGUAGE sql STABLE AS $$
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
        'fulfilment', json_build_object('shipped_at', rfc3339(o.shipped_at),
            'delivered_at', rfc3339(o.delivered_at), 'completed_at', rfc3339(o.completed_at)),
        'qualifying', (SELECT o.status = 'placed'
                AND o.total >= coalesce((s.settings #>> '{repurchase_rule,min_order_amount}')::bigint, 0)
                AND NOT (coalesce((s.settings #>> '{repurchase_rule,exclude_refunded}')::boolean, true)
                         AND o.refunded_amount > 0 AND o.refunded_amount >= o.total)
            FROM shops s WHERE s.id = o.shop_id),
        'created_at', rfc3339(o.created_at))
$$;
