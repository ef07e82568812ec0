-- 0007 the storefront's traffic feed, and occasions' money in the period index.
--
-- Sales decomposition (sales = visitors x conversion x AOV x (1 + repurchase))
-- needs visitors, which only the storefront knows: it posts them per day and
-- channel.  A day's row is replaced when posted again.
CREATE TABLE traffic (
    shop_id    uuid NOT NULL REFERENCES shops (id),
    day        date NOT NULL,
    channel    text NOT NULL CHECK (channel ~ '^[A-Za-z0-9._:-]+$' AND length(channel) <= 64),
    visitors   bigint NOT NULL CHECK (visitors BETWEEN 0 AND 1000000000000),
    sessions   bigint NOT NULL CHECK (sessions BETWEEN 0 AND 1000000000000),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, day, channel)
);
COMMENT ON TABLE traffic IS 'Daily visitors and sessions per channel, as the storefront posted them';
COMMENT ON COLUMN traffic.shop_id IS 'Owning shop';
COMMENT ON COLUMN traffic.day IS 'Calendar date in the shop''s time zone';
COMMENT ON COLUMN traffic.channel IS 'Sales channel the visits came through';
COMMENT ON COLUMN traffic.visitors IS 'Distinct visitors that day';
COMMENT ON COLUMN traffic.sessions IS 'Sessions (visits) that day';
COMMENT ON COLUMN traffic.updated_at IS 'When the row was last posted';

-- Revenue metrics sum orders and net over a period's occasions: with them
-- in the index those sums are index-only scans like the customer counts.
CREATE INDEX purchase_occasions_period2 ON purchase_occasions (shop_id, started_at)
    INCLUDE (customer_seq, n, orders, net);
DROP INDEX purchase_occasions_period;
ALTER INDEX purchase_occasions_period2 RENAME TO purchase_occasions_period;
