-- Paid memberships (issue 6): plans a shop sells, memberships bought by
-- customers, and each paid term.  A term keeps the fee, duration and
-- discount it was sold at: changing a plan never changes what was sold.

CREATE TABLE membership_plans (
    shop_id       uuid NOT NULL REFERENCES shops (id),
    code          text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    fee           bigint NOT NULL CHECK (fee BETWEEN 0 AND 1000000000000),
    duration_days integer NOT NULL CHECK (duration_days BETWEEN 1 AND 3660),
    discount_bp   integer NOT NULL CHECK (discount_bp BETWEEN 0 AND 10000),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, code)
);
COMMENT ON TABLE membership_plans IS 'Paid membership plans a shop sells (annual card, PLUS)';
COMMENT ON COLUMN membership_plans.fee IS 'Price of one term, minor units of the shop currency';
COMMENT ON COLUMN membership_plans.discount_bp IS 'Discount members get, basis points off the price';
COMMENT ON COLUMN membership_plans.active IS 'false: no new sales or renewals';

CREATE TABLE memberships (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    shop_id       uuid NOT NULL REFERENCES shops (id),
    customer_seq  bigint NOT NULL REFERENCES customers (seq),
    plan_code     text NOT NULL,
    card_number   text NOT NULL
                  CHECK (card_number ~ '^[A-Za-z0-9-]+$' AND length(card_number) BETWEEN 4 AND 32),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL CHECK (ends_at >= starts_at),
    cancelled_at  timestamptz,
    refunded      bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, card_number),
    FOREIGN KEY (shop_id, plan_code) REFERENCES membership_plans (shop_id, code),
    CHECK (cancelled_at IS NOT NULL OR refunded = 0)
);
CREATE INDEX memberships_customer ON memberships (customer_seq, starts_at);
COMMENT ON TABLE memberships IS 'A customer''s paid membership: one or more consecutive terms';
COMMENT ON COLUMN memberships.ends_at IS 'End of the last term, or the cancellation time';
COMMENT ON COLUMN memberships.refunded IS 'Refunded on cancellation (pro rata by the stated rule, or 0)';

CREATE TABLE membership_terms (
    membership_seq bigint NOT NULL REFERENCES memberships (seq),
    term_no        integer NOT NULL CHECK (term_no >= 1),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL CHECK (ends_at > starts_at),
    fee            bigint NOT NULL CHECK (fee >= 0),
    duration_days  integer NOT NULL CHECK (duration_days >= 1),
    discount_bp    integer NOT NULL CHECK (discount_bp BETWEEN 0 AND 10000),
    paid_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (membership_seq, term_no)
);
COMMENT ON TABLE membership_terms IS 'Each paid term of a membership, as sold (fee, duration, discount)';

CREATE FUNCTION membership_plan_json(p membership_plans) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', p.code, 'name', p.name, 'fee', p.fee,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = p.shop_id),
        'duration_days', p.duration_days, 'discount_bp', p.discount_bp, 'active', p.active,
        'created_at', rfc3339(p.created_at), 'updated_at', rfc3339(p.updated_at))
$$;

-- The Membership object; status as of now() (the transaction's time).
CREATE FUNCTION membership_json(m memberships) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', m.id,
        'customer_id', (SELECT c.id FROM customers c WHERE c.seq = m.customer_seq),
        'plan', m.plan_code, 'card_number', m.card_number,
        'status', CASE WHEN m.cancelled_at IS NOT NULL THEN 'cancelled'
                       WHEN now() < m.ends_at THEN 'active' ELSE 'expired' END,
        'starts_at', rfc3339(m.starts_at), 'ends_at', rfc3339(m.ends_at),
        'discount_bp', (SELECT t.discount_bp FROM membership_terms t
                        WHERE t.membership_seq = m.seq ORDER BY t.term_no DESC LIMIT 1),
        'currency', (SELECT s.currency FROM shops s WHERE s.id = m.shop_id),
        'paid_total', (SELECT coalesce(sum(t.fee), 0) FROM membership_terms t
                       WHERE t.membership_seq = m.seq),
        'refunded', m.refunded, 'cancelled_at', rfc3339(m.cancelled_at),
        'terms', (SELECT json_agg(json_build_object('starts_at', rfc3339(t.starts_at),
                      'ends_at', rfc3339(t.ends_at), 'fee', t.fee,
                      'duration_days', t.duration_days, 'discount_bp', t.discount_bp,
                      'paid_at', rfc3339(t.paid_at)) ORDER BY t.term_no)
                  FROM membership_terms t WHERE t.membership_seq = m.seq),
        'created_at', rfc3339(m.created_at), 'updated_at', rfc3339(m.updated_at))
$$;
