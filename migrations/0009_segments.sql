-- 0009 built-in lifecycle segments: their parameters as shop settings,
-- and the index the lapsed list walks.

-- The segment parameters of a shop: defaults, overridden by what the shop set.
CREATE FUNCTION shop_segment_settings(s shops) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT '{"second_purchase_window_days": 45, "due_max_factor": 3,
             "due_min_repeat_customers": 30, "lapsing_factor": 2, "lapse_days": 365,
             "vip_percent": 5}'::jsonb || coalesce(s.settings -> 'segments', '{}')
$$;
COMMENT ON FUNCTION shop_segment_settings(shops) IS 'Segment parameters of a shop, defaults filled in';

CREATE OR REPLACE FUNCTION shop_json(s shops) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'name', s.name, 'currency', s.currency,
        'timezone', s.timezone,
        'settings', s.settings || jsonb_build_object('segments', shop_segment_settings(s)),
        'created_at', rfc3339(s.created_at), 'updated_at', rfc3339(s.updated_at))
$$;

-- lapsed: customers by the start of their last purchase
CREATE INDEX customer_facts_last ON customer_facts (shop_id, last_order_at);
