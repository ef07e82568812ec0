-- 0011 RFM: how a shop scores its customers (settings.rfm, default
-- quintiles) and the map from R x F scores to named segments.
CREATE TABLE rfm_maps (
    shop_id    uuid PRIMARY KEY REFERENCES shops (id),
    segments   jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE rfm_maps IS 'A shop''s own R x F segment map (absent: the default map)';
COMMENT ON COLUMN rfm_maps.shop_id IS 'Owning shop';
COMMENT ON COLUMN rfm_maps.segments IS 'Entries {name, r: [lo, hi], f: [lo, hi], lapsed}, validated to cover every cell once';
COMMENT ON COLUMN rfm_maps.updated_at IS 'When last replaced';

CREATE OR REPLACE FUNCTION shop_json(s shops) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'name', s.name, 'currency', s.currency,
        'timezone', s.timezone,
        'settings', '{"rfm": {"method": "quintiles"}}'::jsonb || s.settings
            || jsonb_build_object('segments', shop_segment_settings(s)),
        'created_at', rfc3339(s.created_at), 'updated_at', rfc3339(s.updated_at))
$$;

-- One customer's quintile scores count the customers below it in each
-- dimension: index-only counts, less the erased customers (kept apart).
CREATE INDEX customer_facts_frequency ON customer_facts (shop_id, order_count);
CREATE INDEX customer_facts_monetary ON customer_facts (shop_id, total_spent);
CREATE INDEX customers_erased ON customers (shop_id) WHERE erased_at IS NOT NULL;
