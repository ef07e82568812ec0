-- Earned tiers, benefits with quotas per period, and the test clock (issue 6).

-- The time memberships, tiers and benefits run on: the transaction's now(),
-- unless rebuyd runs with --test-clock and the request set rebuy.now
-- (header Rebuy-Test-Now).  Orders and metrics keep now(): order times come
-- from placed_at.
CREATE FUNCTION rebuy_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('rebuy.now', true), '')::timestamptz, now())
$$;

ALTER TABLE membership_plans ALTER created_at SET DEFAULT rebuy_now(),
    ALTER updated_at SET DEFAULT rebuy_now();
ALTER TABLE memberships ALTER created_at SET DEFAULT rebuy_now(),
    ALTER updated_at SET DEFAULT rebuy_now();
ALTER TABLE membership_terms ALTER paid_at SET DEFAULT rebuy_now();

-- The Membership object; status as of rebuy_now() (the transaction's time).
CREATE OR REPLACE FUNCTION membership_json(m memberships) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', m.id,
        'customer_id', (SELECT c.id FROM customers c WHERE c.seq = m.customer_seq),
        'plan', m.plan_code, 'card_number', m.card_number,
        'status', CASE WHEN m.cancelled_at IS NOT NULL THEN 'cancelled'
                       WHEN rebuy_now() < m.ends_at THEN 'active' ELSE 'expired' END,
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


-- Benefits: what a tier or a plan gives, counted per calendar period.
CREATE TABLE benefits (
    shop_id     uuid NOT NULL REFERENCES shops (id),
    code        text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    period      text NOT NULL CHECK (period IN ('day', 'week', 'month', 'year')),
    valid_from  timestamptz,
    valid_until timestamptz CHECK (valid_until > valid_from),
    created_at  timestamptz NOT NULL DEFAULT rebuy_now(),
    updated_at  timestamptz NOT NULL DEFAULT rebuy_now(),
    PRIMARY KEY (shop_id, code)
);
COMMENT ON TABLE benefits IS 'Benefits with a quota per calendar period (free dry cleaning, 1 a month)';
COMMENT ON COLUMN benefits.period IS 'Calendar period of the quota, in the shop''s time zone';

-- benefit code -> quota per period; a term keeps the plan's as sold
ALTER TABLE membership_plans ADD COLUMN benefits jsonb NOT NULL DEFAULT '{}';
ALTER TABLE membership_terms ADD COLUMN benefits jsonb NOT NULL DEFAULT '{}';

CREATE TABLE benefit_uses (
    shop_id      uuid NOT NULL,
    use_id       text NOT NULL CHECK (length(use_id) BETWEEN 1 AND 128),
    customer_seq bigint NOT NULL REFERENCES customers (seq),
    benefit      text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    note         text,
    used_at      timestamptz NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL CHECK (period_end > period_start),
    PRIMARY KEY (shop_id, use_id),
    FOREIGN KEY (shop_id, benefit) REFERENCES benefits (shop_id, code)
);
CREATE INDEX benefit_uses_period ON benefit_uses (customer_seq, benefit, period_start);
COMMENT ON TABLE benefit_uses IS 'Each recorded use of a benefit; use_id makes recording idempotent';

-- The calendar period of kind p holding instant t in time zone tz: [start, end).
CREATE FUNCTION benefit_period(p text, t timestamptz, tz text, OUT period_start timestamptz,
                               OUT period_end timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT date_trunc(p, t AT TIME ZONE tz) AT TIME ZONE tz,
           (date_trunc(p, t AT TIME ZONE tz) + ('1 ' || p)::interval) AT TIME ZONE tz
$$;

-- The tier programme: one per shop.
CREATE TABLE tier_programmes (
    shop_id        uuid PRIMARY KEY REFERENCES shops (id),
    downgrade      text NOT NULL CHECK (downgrade IN ('never', 'review')),
    every_months   integer CHECK (every_months IN (1, 3, 6, 12)),
    grace_days     integer CHECK (grace_days BETWEEN 0 AND 365),
    last_review_at timestamptz,
    next_review_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT rebuy_now(),
    updated_at     timestamptz NOT NULL DEFAULT rebuy_now(),
    CHECK ((downgrade = 'review') = (every_months IS NOT NULL AND grace_days IS NOT NULL
                                     AND next_review_at IS NOT NULL))
);
COMMENT ON COLUMN tier_programmes.next_review_at IS 'The next review instant not yet run';

CREATE TABLE tiers (
    shop_id     uuid NOT NULL REFERENCES tier_programmes (shop_id),
    code        text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    rank        integer NOT NULL CHECK (rank >= 1),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    discount_bp integer NOT NULL CHECK (discount_bp BETWEEN 0 AND 10000),
    window_days integer NOT NULL CHECK (window_days BETWEEN 1 AND 3660),
    net_spend   bigint CHECK (net_spend BETWEEN 0 AND 1000000000000),
    orders      integer CHECK (orders BETWEEN 1 AND 100000),
    combine     text NOT NULL CHECK (combine IN ('and', 'or')),
    benefits    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (shop_id, code),
    UNIQUE (shop_id, rank)
);
COMMENT ON TABLE tiers IS 'Ordered tiers; rank 1 is the lowest; no net_spend and no orders: an entry tier';

-- The tier a customer holds, never below the entry tier (none stored: the
-- entry tier, if any, held since always).
CREATE TABLE customer_tiers (
    customer_seq bigint PRIMARY KEY REFERENCES customers (seq),
    shop_id      uuid NOT NULL,
    tier         text NOT NULL,
    since        timestamptz NOT NULL,
    cause        text NOT NULL,
    grace_until  timestamptz,
    floor_tier   text,
    floor_until  timestamptz,
    CHECK ((floor_tier IS NULL) = (floor_until IS NULL))
);
CREATE INDEX customer_tiers_shop ON customer_tiers (shop_id, tier);
CREATE INDEX customer_tiers_grace ON customer_tiers (shop_id, grace_until)
    WHERE grace_until IS NOT NULL;
COMMENT ON COLUMN customer_tiers.grace_until IS 'Set by a review the customer failed; the tier goes then unless they requalify';
COMMENT ON COLUMN customer_tiers.floor_tier IS 'Manual floor: reviews and refunds never go below it before floor_until';

CREATE TABLE tier_history (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id      uuid NOT NULL,
    customer_seq bigint NOT NULL REFERENCES customers (seq),
    at           timestamptz NOT NULL,
    from_tier    text,
    to_tier      text,
    cause        text NOT NULL CHECK (cause IN ('order', 'refund', 'cancel', 'review', 'manual')),
    order_id     text,
    reason       text
);
CREATE INDEX tier_history_customer ON tier_history (customer_seq, seq);
COMMENT ON TABLE tier_history IS 'Every change of a customer''s tier, with its cause';

-- Small lookups in PL/pgSQL, not SQL: a SQL function that cannot be
-- inlined is planned again at every call, and tier_evaluate() runs with
-- every order write.
CREATE FUNCTION tier_rank(p_shop uuid, p_code text) RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT t.rank FROM tiers t WHERE t.shop_id = p_shop AND t.code = p_code), 0);
END $$;
CREATE FUNCTION tier_code(p_shop uuid, p_rank integer) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT t.code FROM tiers t WHERE t.shop_id = p_shop AND t.rank = p_rank);
END $$;
-- the highest entry tier (no thresholds): every customer holds at least it
CREATE FUNCTION tier_entry_rank(p_shop uuid) RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(max(t.rank), 0) FROM tiers t
             WHERE t.shop_id = p_shop AND t.net_spend IS NULL AND t.orders IS NULL);
END $$;

-- Does the customer qualify for tier t at instant p_at?  Over the purchase
-- occasions started in (p_at - window, p_at], with their net as it is now.
CREATE FUNCTION tier_qualifies(p_customer bigint, t tiers, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    n bigint;
    spend numeric;
BEGIN
    IF t.net_spend IS NULL AND t.orders IS NULL THEN
        RETURN true;
    END IF;
    SELECT count(*), coalesce(sum(o.net), 0) INTO n, spend FROM purchase_occasions o
     WHERE o.customer_seq = p_customer
       AND o.started_at > p_at - make_interval(hours => 24 * t.window_days)
       AND o.started_at <= p_at;
    RETURN CASE WHEN t.net_spend IS NULL THEN n >= t.orders
                WHEN t.orders IS NULL THEN spend >= t.net_spend
                WHEN t.combine = 'and' THEN n >= t.orders AND spend >= t.net_spend
                ELSE n >= t.orders OR spend >= t.net_spend END;
END $$;

-- The rank of the highest tier the customer qualifies for at p_at (0: none):
-- tier_qualifies for every tier, in one query.
CREATE FUNCTION tier_qualified_rank(p_shop uuid, p_customer bigint, p_at timestamptz)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(max(t.rank), 0) FROM tiers t
              LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(o.net), 0) AS spend
                                   FROM purchase_occasions o
                                  WHERE o.customer_seq = p_customer
                                    AND o.started_at > p_at - make_interval(hours => 24 * t.window_days)
                                    AND o.started_at <= p_at) w ON true
             WHERE t.shop_id = p_shop
               AND CASE WHEN t.net_spend IS NULL AND t.orders IS NULL THEN true
                        WHEN t.net_spend IS NULL THEN w.n >= t.orders
                        WHEN t.orders IS NULL THEN w.spend >= t.net_spend
                        WHEN t.combine = 'and' THEN w.n >= t.orders AND w.spend >= t.net_spend
                        ELSE w.n >= t.orders OR w.spend >= t.net_spend END);
END $$;

-- Set the customer's stored tier to rank p_to (0, no tier: no row) and
-- write the history row.
CREATE FUNCTION tier_set(p_shop uuid, p_customer bigint, p_from integer, p_to integer,
                         p_at timestamptz, p_cause text, p_order text, p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_to = 0 THEN
        DELETE FROM customer_tiers WHERE customer_seq = p_customer;
    ELSE
        INSERT INTO customer_tiers (customer_seq, shop_id, tier, since, cause)
        VALUES (p_customer, p_shop, tier_code(p_shop, p_to), p_at, p_cause)
        ON CONFLICT (customer_seq) DO UPDATE SET tier = excluded.tier, since = excluded.since,
            cause = excluded.cause, grace_until = NULL;
    END IF;
    INSERT INTO tier_history (shop_id, customer_seq, at, from_tier, to_tier, cause, order_id, reason)
    VALUES (p_shop, p_customer, p_at, tier_code(p_shop, p_from), tier_code(p_shop, p_to), p_cause,
            p_order, p_reason);
END $$;

-- Re-evaluate a customer after an order change (p_cause order, refund or
-- cancel; p_order the order's id), in the order's transaction, which holds
-- the customer's row lock (customer_facts_refresh).
--   * Upgrade at once to the highest tier qualified for now.
--   * A refund or cancel takes back a tier earned by an order that, seen at
--     the instant it was earned with today's data, no longer qualifies:
--     down to the larger of the tier before that upgrade, the tier
--     qualified for now, an active floor; repeated for the upgrade before.
--   * Qualifying again for the tier held ends a grace period.
CREATE FUNCTION tier_evaluate(p_customer bigint, p_cause text, p_order text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_shop  uuid;
    v_now   timestamptz := rebuy_now();
    v_entry integer;
    q       integer;
    ct      customer_tiers;
    held    integer;
    fl      integer := 0;
    to_rank integer;
    bound   bigint := 9223372036854775807;
    h       tier_history;
BEGIN
    SELECT p.shop_id INTO v_shop FROM customers c JOIN tier_programmes p ON p.shop_id = c.shop_id
     WHERE c.seq = p_customer;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_entry := tier_entry_rank(v_shop);
    q := tier_qualified_rank(v_shop, p_customer, v_now);
    SELECT * INTO ct FROM customer_tiers WHERE customer_seq = p_customer;
    held := greatest(v_entry, tier_rank(v_shop, ct.tier));
    IF ct.floor_until > v_now THEN
        fl := tier_rank(v_shop, ct.floor_tier);
    END IF;
    IF q > held THEN
        PERFORM tier_set(v_shop, p_customer, held, q, v_now, 'order', p_order, NULL);
        RETURN;
    END IF;
    IF ct.grace_until IS NOT NULL AND q >= held THEN
        UPDATE customer_tiers SET grace_until = NULL WHERE customer_seq = p_customer;
    END IF;
    IF p_cause NOT IN ('refund', 'cancel') OR held <= greatest(q, fl, v_entry) THEN
        RETURN;
    END IF;
    to_rank := held;
    LOOP
        -- the change that made the customer hold to_rank (undoes excluded)
        SELECT * INTO h FROM tier_history
         WHERE customer_seq = p_customer AND seq < bound AND cause NOT IN ('refund', 'cancel')
           AND to_tier = tier_code(v_shop, to_rank)
         ORDER BY seq DESC LIMIT 1;
        EXIT WHEN NOT FOUND OR h.cause <> 'order'
            OR tier_qualifies(p_customer, (SELECT t FROM tiers t
                                           WHERE t.shop_id = v_shop AND t.rank = to_rank), h.at);
        to_rank := greatest(tier_rank(v_shop, h.from_tier), q, fl, v_entry);
        bound := h.seq;
        EXIT WHEN to_rank <> tier_rank(v_shop, h.from_tier);
    END LOOP;
    IF to_rank < held THEN
        PERFORM tier_set(v_shop, p_customer, held, to_rank, v_now, p_cause, p_order, NULL);
    END IF;
END $$;

-- The latest review instant at or before t: 00:00 local on the 1st of a
-- month whose number - 1 is a multiple of every.
CREATE FUNCTION tier_review_instant(t timestamptz, tz text, every integer) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT make_date(extract(year FROM l)::integer,
                     (extract(month FROM l)::integer - 1) / every * every + 1, 1)::timestamp
           AT TIME ZONE tz
      FROM (SELECT t AT TIME ZONE tz AS l) x
$$;
CREATE FUNCTION tier_review_after(r timestamptz, tz text, every integer) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT ((tier_review_instant(r, tz, every) AT TIME ZONE tz) + make_interval(months => every))
           AT TIME ZONE tz
$$;

-- End the grace periods of the shop's customers that end by p_until, oldest
-- first: a customer who does not qualify for their tier at the end of grace
-- G goes down to the larger of the tier qualified for at G and an active
-- floor (history cause review, at G); one who does keeps it.  Returns the
-- number who went down.
CREATE FUNCTION tier_grace_ends(p_shop uuid, p_until timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_entry    integer := tier_entry_rank(p_shop);
    downgraded integer := 0;
    c          record;
    q          integer;
    fl         integer;
BEGIN
    FOR c IN SELECT ct.*, t.rank FROM customer_tiers ct
               JOIN tiers t ON t.shop_id = ct.shop_id AND t.code = ct.tier
              WHERE ct.shop_id = p_shop AND ct.grace_until <= p_until
              ORDER BY ct.grace_until, ct.customer_seq FOR UPDATE OF ct LOOP
        q := tier_qualified_rank(p_shop, c.customer_seq, c.grace_until);
        fl := CASE WHEN c.floor_until > c.grace_until THEN tier_rank(p_shop, c.floor_tier) ELSE 0 END;
        IF greatest(q, fl) >= c.rank THEN
            UPDATE customer_tiers SET grace_until = NULL WHERE customer_seq = c.customer_seq;
        ELSE
            PERFORM tier_set(p_shop, c.customer_seq, c.rank, greatest(q, fl, v_entry),
                             c.grace_until, 'review', NULL, NULL);
            downgraded := downgraded + 1;
        END IF;
    END LOOP;
    RETURN downgraded;
END $$;

-- Run what is due in the shop's programme at p_now, oldest first: grace
-- periods that ended by the latest review instant not yet run, that review
-- (customers below their tier enter grace, or go down at once without
-- grace), then the grace periods that ended since.  NULL when the shop has
-- no programme.
CREATE FUNCTION tier_review(p_shop uuid, p_now timestamptz) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    p          tier_programmes;
    tz         text;
    r          timestamptz;
    v_entry    integer;
    graced     integer := 0;
    downgraded integer := 0;
    c          record;
    q          integer;
    fl         integer;
BEGIN
    SELECT * INTO p FROM tier_programmes WHERE shop_id = p_shop FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p.downgrade = 'never' THEN
        RETURN json_build_object('reviewed_at', NULL, 'graced', 0, 'downgraded', 0,
                                 'next_review_at', NULL);
    END IF;
    SELECT s.timezone INTO tz FROM shops s WHERE s.id = p_shop;
    v_entry := tier_entry_rank(p_shop);
    IF p.next_review_at <= p_now THEN
        r := tier_review_instant(p_now, tz, p.every_months);
        downgraded := tier_grace_ends(p_shop, r);
        FOR c IN SELECT ct.*, t.rank FROM customer_tiers ct
                   JOIN tiers t ON t.shop_id = ct.shop_id AND t.code = ct.tier
                  WHERE ct.shop_id = p_shop AND ct.grace_until IS NULL AND t.rank > v_entry
                  ORDER BY ct.customer_seq FOR UPDATE OF ct LOOP
            q := tier_qualified_rank(p_shop, c.customer_seq, r);
            fl := CASE WHEN c.floor_until > r THEN tier_rank(p_shop, c.floor_tier) ELSE 0 END;
            CONTINUE WHEN greatest(q, fl) >= c.rank;
            IF p.grace_days = 0 THEN
                PERFORM tier_set(p_shop, c.customer_seq, c.rank, greatest(q, fl, v_entry), r,
                                 'review', NULL, NULL);
                downgraded := downgraded + 1;
            ELSE
                UPDATE customer_tiers SET grace_until = r + make_interval(hours => 24 * p.grace_days)
                 WHERE customer_seq = c.customer_seq;
                graced := graced + 1;
            END IF;
        END LOOP;
        UPDATE tier_programmes SET last_review_at = r,
               next_review_at = tier_review_after(r, tz, p.every_months)
         WHERE shop_id = p_shop RETURNING * INTO p;
    END IF;
    downgraded := downgraded + tier_grace_ends(p_shop, p_now);
    RETURN json_build_object('reviewed_at', rfc3339(r), 'graced', graced,
                             'downgraded', downgraded, 'next_review_at', rfc3339(p.next_review_at));
END $$;

CREATE FUNCTION tier_json(t tiers) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', t.code, 'name', t.name, 'rank', t.rank,
        'discount_bp', t.discount_bp,
        'qualification', json_build_object('window_days', t.window_days, 'net_spend', t.net_spend,
            'orders', t.orders, 'combine', t.combine),
        'benefits', t.benefits)
$$;

CREATE FUNCTION tier_programme_json(p tier_programmes) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'tiers', (SELECT json_agg(tier_json(t) ORDER BY t.rank) FROM tiers t
                   WHERE t.shop_id = p.shop_id),
        'downgrade', CASE WHEN p.downgrade = 'never' THEN json_build_object('policy', 'never')
                     ELSE json_build_object('policy', 'review', 'every_months', p.every_months,
                                            'grace_days', p.grace_days) END,
        'last_review_at', rfc3339(p.last_review_at), 'next_review_at', rfc3339(p.next_review_at),
        'created_at', rfc3339(p.created_at), 'updated_at', rfc3339(p.updated_at))
$$;

-- The rank a customer holds (stored, else the entry tier; 0: none).
CREATE FUNCTION tier_held_rank(p_shop uuid, p_customer bigint) RETURNS integer
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN greatest(tier_entry_rank(p_shop),
                    (SELECT tier_rank(p_shop, ct.tier) FROM customer_tiers ct
                      WHERE ct.customer_seq = p_customer));
END $$;

-- The CustomerTier object at p_now; NULL without a programme.
CREATE FUNCTION customer_tier_json(p_shop uuid, p_customer bigint, p_id text, p_now timestamptz)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('customer_id', p_id, 'tier', t.code, 'name', t.name, 'rank', t.rank,
        'discount_bp', coalesce(t.discount_bp, 0),
        'since', rfc3339(CASE WHEN ct.tier = t.code THEN ct.since END),
        'cause', CASE WHEN ct.tier = t.code THEN ct.cause WHEN t.code IS NOT NULL THEN 'entry' END,
        'grace_until', rfc3339(CASE WHEN ct.tier = t.code THEN ct.grace_until END),
        'floor', CASE WHEN ct.floor_until > p_now THEN ct.floor_tier END,
        'floor_until', rfc3339(CASE WHEN ct.floor_until > p_now THEN ct.floor_until END),
        'qualifies_for', tier_code(p_shop, tier_qualified_rank(p_shop, p_customer, p_now)))
      FROM tier_programmes p
      LEFT JOIN customer_tiers ct ON ct.customer_seq = p_customer
      LEFT JOIN tiers t ON t.shop_id = p_shop AND t.rank = tier_held_rank(p_shop, p_customer)
     WHERE p.shop_id = p_shop
$$;

-- Each benefit's quota, use and remaining count this period for a customer:
-- the quota is the largest of the tier held's and the active memberships'
-- terms in progress.  Only benefits with a quota or a use this period.
CREATE FUNCTION customer_benefits(p_shop uuid, p_customer bigint, p_now timestamptz)
RETURNS TABLE (code text, name text, period text, period_start timestamptz,
               period_end timestamptz, quota integer, used integer, source text)
LANGUAGE sql STABLE AS $$
    WITH tq AS (
        SELECT t.benefits FROM tiers t
         WHERE t.shop_id = p_shop AND t.rank = tier_held_rank(p_shop, p_customer)),
    mq AS (
        SELECT b.key AS code, max(b.value::integer) AS quota
          FROM memberships m
          JOIN LATERAL (SELECT tm.benefits FROM membership_terms tm
                         WHERE tm.membership_seq = m.seq AND tm.starts_at <= p_now
                         ORDER BY tm.term_no DESC LIMIT 1) cur ON true,
               jsonb_each_text(cur.benefits) b
         WHERE m.customer_seq = p_customer AND m.cancelled_at IS NULL
           AND m.starts_at <= p_now AND p_now < m.ends_at
         GROUP BY b.key)
    SELECT b.code, b.name, b.period, per.period_start, per.period_end,
           greatest(coalesce(((SELECT tq.benefits FROM tq) ->> b.code)::integer, 0),
                    coalesce(mq.quota, 0)),
           coalesce((SELECT sum(u.quantity)::integer FROM benefit_uses u
                      WHERE u.customer_seq = p_customer AND u.benefit = b.code
                        AND u.period_start = per.period_start), 0),
           CASE WHEN coalesce(mq.quota, 0) >= coalesce(((SELECT tq.benefits FROM tq) ->> b.code)::integer, 0)
                 AND mq.quota IS NOT NULL THEN 'membership' ELSE 'tier' END
      FROM benefits b
      JOIN shops s ON s.id = b.shop_id
      LEFT JOIN mq ON mq.code = b.code,
      LATERAL benefit_period(b.period, p_now, s.timezone) per
     WHERE b.shop_id = p_shop
$$;

CREATE OR REPLACE FUNCTION membership_plan_json(p membership_plans) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', p.code, 'name', p.name, 'fee', p.fee,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = p.shop_id),
        'duration_days', p.duration_days, 'discount_bp', p.discount_bp, 'active', p.active,
        'benefits', p.benefits,
        'created_at', rfc3339(p.created_at), 'updated_at', rfc3339(p.updated_at))
$$;

-- What applies to a customer at p_now: the tier held, the active paid
-- memberships, the better of their discounts, and each benefit's count.
CREATE FUNCTION customer_membership_json(p_shop uuid, p_customer bigint, p_id text,
                                         p_now timestamptz)
RETURNS json LANGUAGE sql STABLE AS $$
    WITH ms AS (
        SELECT m.seq, (SELECT t.discount_bp FROM membership_terms t
                        WHERE t.membership_seq = m.seq AND t.starts_at <= p_now
                        ORDER BY t.term_no DESC LIMIT 1) AS bp
          FROM memberships m
         WHERE m.customer_seq = p_customer AND m.cancelled_at IS NULL AND p_now < m.ends_at),
    ti AS (SELECT t.* FROM tiers t
            WHERE t.shop_id = p_shop AND t.rank = tier_held_rank(p_shop, p_customer)),
    ct AS (SELECT * FROM customer_tiers WHERE customer_seq = p_customer),
    d AS (SELECT coalesce((SELECT max(bp) FROM ms), 0) AS mb,
                 coalesce((SELECT discount_bp FROM ti), 0) AS tb)
    SELECT json_build_object('customer_id', p_id, 'as_of', rfc3339(p_now),
        'tier', (SELECT json_build_object('code', ti.code, 'name', ti.name, 'rank', ti.rank,
                     'discount_bp', ti.discount_bp,
                     'since', rfc3339(CASE WHEN ct.tier = ti.code THEN ct.since END),
                     'grace_until', rfc3339(CASE WHEN ct.tier = ti.code THEN ct.grace_until END))
                   FROM ti LEFT JOIN ct ON true),
        'memberships', coalesce((SELECT json_agg(membership_json(m) ORDER BY m.starts_at DESC, m.id)
                                   FROM memberships m WHERE m.seq IN (SELECT seq FROM ms)), '[]'),
        'discount_bp', greatest(d.mb, d.tb),
        'discount_source', CASE WHEN greatest(d.mb, d.tb) = 0 THEN NULL
                                WHEN d.mb >= d.tb THEN 'membership' ELSE 'tier' END,
        'benefits', coalesce((SELECT json_agg(json_build_object('code', b.code, 'name', b.name,
                         'period', b.period, 'period_start', rfc3339(b.period_start),
                         'period_end', rfc3339(b.period_end), 'quota', b.quota, 'used', b.used,
                         'remaining', greatest(b.quota - b.used, 0), 'source', b.source)
                         ORDER BY b.code COLLATE "C")
                     FROM customer_benefits(p_shop, p_customer, p_now) b
                    WHERE b.quota > 0 OR b.used > 0), '[]'))
      FROM d
$$;

CREATE FUNCTION benefit_json(b benefits) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', b.code, 'name', b.name, 'period', b.period,
        'valid_from', rfc3339(b.valid_from), 'valid_until', rfc3339(b.valid_until),
        'created_at', rfc3339(b.created_at), 'updated_at', rfc3339(b.updated_at))
$$;

-- Manual assignment (cause manual, with the admin's reason); with
-- p_floor_until, the tier is a floor until then.
CREATE FUNCTION tier_assign(p_shop uuid, p_customer bigint, p_tier text, p_reason text,
                            p_floor_until timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := rebuy_now();
    held  integer := tier_held_rank(p_shop, p_customer);
BEGIN
    INSERT INTO customer_tiers (customer_seq, shop_id, tier, since, cause, floor_tier, floor_until)
    VALUES (p_customer, p_shop, p_tier, v_now, 'manual',
            CASE WHEN p_floor_until IS NOT NULL THEN p_tier END, p_floor_until)
    ON CONFLICT (customer_seq) DO UPDATE SET tier = excluded.tier, since = excluded.since,
        cause = excluded.cause, grace_until = NULL, floor_tier = excluded.floor_tier,
        floor_until = excluded.floor_until;
    INSERT INTO tier_history (shop_id, customer_seq, at, from_tier, to_tier, cause, reason)
    VALUES (p_shop, p_customer, v_now, tier_code(p_shop, held), p_tier, 'manual', p_reason);
END $$;

-- tier_evaluate for the customers of one import (of one shop).
CREATE FUNCTION tier_evaluate_many(p_customers bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM customers c JOIN tier_programmes p ON p.shop_id = c.shop_id
                WHERE c.seq = p_customers[1]) THEN
        PERFORM tier_evaluate(s, 'order', NULL) FROM unnest(p_customers) s ORDER BY s;
    END IF;
END $$;
