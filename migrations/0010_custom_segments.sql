-- 0010 custom segments: a shop's saved filters over customer facts.
-- The filter is kept as the JSON the shop sent (validated on the way in)
-- and compiled to parameterised SQL on every use: membership is always as
-- of the request.
CREATE TABLE custom_segments (
    shop_id     uuid NOT NULL REFERENCES shops (id),
    code        text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 1000),
    filter      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, code)
);
COMMENT ON TABLE custom_segments IS 'Segments a shop defined as a filter over customer facts';
COMMENT ON COLUMN custom_segments.shop_id IS 'Owning shop';
COMMENT ON COLUMN custom_segments.code IS 'The shop''s name for it in URLs: 1-64 of [a-z0-9-]';
COMMENT ON COLUMN custom_segments.name IS 'Display name';
COMMENT ON COLUMN custom_segments.description IS 'What it is for';
COMMENT ON COLUMN custom_segments.filter IS 'The filter (all / any / not / conditions), as validated';
COMMENT ON COLUMN custom_segments.created_at IS 'When first saved';
COMMENT ON COLUMN custom_segments.updated_at IS 'When last replaced';
