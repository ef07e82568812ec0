-- Prepaid packages and coupon packs (issue 8), on the ledger of 0015: a
-- journal row now belongs to a wallet, a package or a coupon.

-- Package plans are versioned: a change is a new row; packages point at theirs.
CREATE TABLE package_plans (
    shop_id       uuid NOT NULL REFERENCES shops (id),
    code          text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    version       integer NOT NULL CHECK (version >= 1),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    uses          integer NOT NULL CHECK (uses BETWEEN 1 AND 100000),
    price         bigint NOT NULL CHECK (price BETWEEN 0 AND 1000000000000),
    valid_days    integer CHECK (valid_days BETWEEN 1 AND 3660),
    valid_until   timestamptz,
    max_per_visit integer CHECK (max_per_visit BETWEEN 1 AND 100000),
    period_uses   integer CHECK (period_uses BETWEEN 1 AND 100000),
    period        text CHECK (period IN ('day', 'week', 'month')),
    sale_from     timestamptz,
    sale_until    timestamptz,
    presale_price bigint CHECK (presale_price BETWEEN 0 AND 1000000000000),
    presale_until timestamptz,
    active        boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT rebuy_now(),
    PRIMARY KEY (shop_id, code, version),
    CHECK ((valid_days IS NULL) <> (valid_until IS NULL)),
    CHECK ((period_uses IS NULL) = (period IS NULL)),
    CHECK ((presale_price IS NULL) = (presale_until IS NULL) AND presale_price <= price),
    CHECK (sale_from < sale_until)
);
COMMENT ON TABLE package_plans IS 'Package plans (visit passes), one row per version';

-- A customer's package.  The cached figures always add up:
-- price = recognised + deferred + breakage + refunded (deferred equals the
-- journal's package_deferred sum), uses = redeemed + left + expired + refunded.
CREATE TABLE packages (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id       uuid NOT NULL REFERENCES shops (id),
    package_id    text NOT NULL CHECK (length(package_id) BETWEEN 1 AND 128),
    customer_seq  bigint NOT NULL REFERENCES customers (seq),
    plan_code     text NOT NULL,
    plan_version  integer NOT NULL,
    order_id      text,
    uses          integer NOT NULL CHECK (uses >= 1),
    price         bigint NOT NULL CHECK (price >= 0),
    purchased_at  timestamptz NOT NULL,
    valid_until   timestamptz NOT NULL,
    redeemed      integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    uses_expired  integer NOT NULL DEFAULT 0 CHECK (uses_expired >= 0),
    uses_refunded integer NOT NULL DEFAULT 0 CHECK (uses_refunded >= 0),
    recognised    bigint NOT NULL DEFAULT 0 CHECK (recognised >= 0),
    deferred      bigint NOT NULL CHECK (deferred >= 0),
    breakage      bigint NOT NULL DEFAULT 0 CHECK (breakage >= 0),
    refunded      bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'used_up', 'expired', 'refunded')),
    closed_at     timestamptz,
    refund_reason text,
    UNIQUE (shop_id, package_id),
    FOREIGN KEY (shop_id, plan_code, plan_version) REFERENCES package_plans (shop_id, code, version),
    CHECK (redeemed + uses_expired + uses_refunded <= uses),
    CHECK (recognised + deferred + breakage + refunded = price),
    CHECK ((status IN ('expired', 'refunded')) = (closed_at IS NOT NULL))
);
CREATE INDEX packages_customer ON packages (customer_seq, purchased_at);
CREATE INDEX packages_due ON packages (valid_until) WHERE status = 'active';

CREATE TABLE package_redemptions (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id         uuid NOT NULL,
    redemption_id   text NOT NULL CHECK (length(redemption_id) BETWEEN 1 AND 128),
    package_seq     bigint NOT NULL REFERENCES packages (seq),
    uses            integer NOT NULL CHECK (uses >= 1),
    recognised      bigint NOT NULL CHECK (recognised >= 0),
    order_id        text,
    at              timestamptz NOT NULL,
    reversed_at     timestamptz,
    reversal_reason text,
    reversal_amount bigint CHECK (reversal_amount >= 0),
    UNIQUE (shop_id, redemption_id),
    CHECK ((reversed_at IS NULL) = (reversal_reason IS NULL)
           AND (reversed_at IS NULL) = (reversal_amount IS NULL))
);
CREATE INDEX package_redemptions_package ON package_redemptions (package_seq, at);

-- Coupon packs, versioned like plans and offers.
CREATE TABLE coupon_packs (
    shop_id              uuid NOT NULL REFERENCES shops (id),
    code                 text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    version              integer NOT NULL CHECK (version >= 1),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    count                integer NOT NULL CHECK (count BETWEEN 1 AND 120),
    amount               bigint NOT NULL CHECK (amount BETWEEN 1 AND 1000000000000),
    min_spend            bigint NOT NULL CHECK (min_spend BETWEEN 0 AND 1000000000000),
    validity             text NOT NULL CHECK (validity IN ('in_order', 'own_month')),
    expires_after_months integer CHECK (expires_after_months BETWEEN 1 AND 120),
    active               boolean NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT rebuy_now(),
    PRIMARY KEY (shop_id, code, version)
);

CREATE TABLE coupon_grants (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id      uuid NOT NULL REFERENCES shops (id),
    grant_id     text NOT NULL CHECK (length(grant_id) BETWEEN 1 AND 140),
    customer_seq bigint NOT NULL REFERENCES customers (seq),
    pack_code    text NOT NULL,
    pack_version integer NOT NULL,
    source       text NOT NULL CHECK (source IN ('grant', 'topup')),
    topup_seq    bigint UNIQUE REFERENCES topups (seq),
    issued_at    timestamptz NOT NULL,
    UNIQUE (shop_id, grant_id),
    FOREIGN KEY (shop_id, pack_code, pack_version) REFERENCES coupon_packs (shop_id, code, version),
    CHECK ((source = 'topup') = (topup_seq IS NOT NULL))
);
CREATE INDEX coupon_grants_customer ON coupon_grants (customer_seq, issued_at);

-- The coupons of a grant; their terms are the pack version's, copied.
CREATE TABLE coupons (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    grant_seq    bigint NOT NULL REFERENCES coupon_grants (seq),
    number       integer NOT NULL CHECK (number >= 1),
    amount       bigint NOT NULL CHECK (amount > 0),
    min_spend    bigint NOT NULL CHECK (min_spend >= 0),
    valid_from   timestamptz,
    valid_until  timestamptz,
    redeemed_at  timestamptz,
    order_id     text,
    order_amount bigint CHECK (order_amount >= 0),
    cancelled_at timestamptz,
    UNIQUE (grant_seq, number),
    CHECK ((redeemed_at IS NULL) = (order_id IS NULL) AND (redeemed_at IS NULL) = (order_amount IS NULL)),
    CHECK (redeemed_at IS NULL OR cancelled_at IS NULL)
);

-- A top-up offer may give a coupon pack as (part of) its bonus.
ALTER TABLE topup_offers ADD COLUMN coupon_pack text
    CHECK (coupon_pack ~ '^[a-z0-9-]+$' AND length(coupon_pack) <= 64);

-- The journal: a row belongs to exactly one wallet, package or coupon; the
-- balances after are a wallet's.
ALTER TABLE journal
    ALTER COLUMN wallet_seq DROP NOT NULL,
    ALTER COLUMN principal_after DROP NOT NULL,
    ALTER COLUMN bonus_available_after DROP NOT NULL,
    ALTER COLUMN bonus_scheduled_after DROP NOT NULL,
    ADD COLUMN package_seq bigint REFERENCES packages (seq),
    ADD COLUMN coupon_seq bigint REFERENCES coupons (seq),
    DROP CONSTRAINT journal_kind_check,
    ADD CONSTRAINT journal_kind_check CHECK (kind IN ('topup', 'release', 'spend', 'expiry',
        'refund', 'topup_refund', 'adjustment', 'package_purchase', 'redemption',
        'redemption_reversal', 'package_refund', 'package_expiry', 'coupon_redemption')),
    ADD CONSTRAINT journal_owner CHECK (num_nonnulls(wallet_seq, package_seq, coupon_seq) = 1),
    ADD CONSTRAINT journal_wallet_balances CHECK (
        (wallet_seq IS NULL) = (principal_after IS NULL)
        AND (wallet_seq IS NULL) = (bonus_available_after IS NULL)
        AND (wallet_seq IS NULL) = (bonus_scheduled_after IS NULL));
CREATE INDEX journal_package ON journal (package_seq) WHERE package_seq IS NOT NULL;
CREATE INDEX journal_coupon ON journal (coupon_seq) WHERE coupon_seq IS NOT NULL;

ALTER TABLE journal_entries
    DROP CONSTRAINT journal_entries_account_check,
    ADD CONSTRAINT journal_entries_account_check CHECK (account IN ('principal', 'bonus_available',
        'bonus_scheduled', 'package_deferred', 'cash', 'promotion', 'revenue', 'breakage',
        'adjustment'));

-- Post one movement of a package or a coupon (p_entries: {"package_deferred":
-- 500, "cash": -500}); refuses entries that do not sum to zero.  The
-- caller updates the package's cached figures in the same statement that
-- changes its state, so its CHECKs hold row by row.
CREATE FUNCTION journal_post(p_shop uuid, p_package bigint, p_coupon bigint, p_kind text,
                             p_ref text, p_at timestamptz, p_entries jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    j     bigint;
    total numeric;
BEGIN
    SELECT coalesce(sum(e.value::bigint), 0) INTO total FROM jsonb_each_text(p_entries) e;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger: % % does not balance (%)', p_kind, p_ref, total;
    END IF;
    INSERT INTO journal (shop_id, package_seq, coupon_seq, kind, ref, at)
    VALUES (p_shop, p_package, p_coupon, p_kind, p_ref, p_at) RETURNING seq INTO j;
    INSERT INTO journal_entries (journal_seq, account, amount)
    SELECT j, e.key, e.value::bigint FROM jsonb_each_text(p_entries) e WHERE e.value::bigint <> 0;
    RETURN j;
END $$;

-- A rate as the metrics give it: 4 decimals, half up; null without a denominator.
CREATE FUNCTION rate_json(num numeric, den numeric) RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('numerator', num, 'denominator', den,
                             'rate', CASE WHEN den > 0 THEN round(num::numeric / den, 4) END)
$$;

-- ---- package plans -------------------------------------------------------

CREATE FUNCTION package_plan_json(p package_plans) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', p.code, 'version', p.version, 'name', p.name,
        'uses', p.uses, 'price', p.price,
        'validity', json_build_object('days', p.valid_days, 'until', rfc3339(p.valid_until)),
        'max_uses_per_visit', p.max_per_visit,
        'max_uses_per_period', CASE WHEN p.period IS NOT NULL
            THEN json_build_object('uses', p.period_uses, 'period', p.period) END,
        'sale', CASE WHEN p.sale_from IS NOT NULL OR p.sale_until IS NOT NULL
            THEN json_build_object('from', rfc3339(p.sale_from), 'until', rfc3339(p.sale_until)) END,
        'presale', CASE WHEN p.presale_price IS NOT NULL
            THEN json_build_object('price', p.presale_price, 'until', rfc3339(p.presale_until)) END,
        'active', p.active, 'currency', (SELECT s.currency FROM shops s WHERE s.id = p.shop_id),
        'created_at', rfc3339(p.created_at))
$$;

-- ---- packages ------------------------------------------------------------

-- Recognised revenue of a package after n net redeemed uses (the stated
-- rule): floor(price * n / uses), so the uses add up to the price exactly.
CREATE FUNCTION package_recognised(p_price bigint, p_n integer, p_uses integer) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_price * p_n / p_uses -- both >= 0: integer division is the floor
$$;

CREATE FUNCTION package_json(k packages, p_customer_id text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('package_id', k.package_id, 'customer_id', p_customer_id,
        'plan', k.plan_code, 'plan_version', k.plan_version, 'name', p.name,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = k.shop_id),
        'uses', k.uses, 'uses_redeemed', k.redeemed,
        'uses_left', CASE WHEN k.status IN ('active', 'used_up') THEN k.uses - k.redeemed ELSE 0 END,
        'uses_expired', k.uses_expired, 'uses_refunded', k.uses_refunded,
        'price', k.price, 'recognised', k.recognised, 'deferred', k.deferred,
        'breakage', k.breakage, 'refunded', k.refunded,
        'purchased_at', rfc3339(k.purchased_at), 'valid_until', rfc3339(k.valid_until),
        'order_id', k.order_id, 'max_uses_per_visit', p.max_per_visit,
        'max_uses_per_period', CASE WHEN p.period IS NOT NULL
            THEN json_build_object('uses', p.period_uses, 'period', p.period) END,
        'status', k.status)
      FROM package_plans p
     WHERE p.shop_id = k.shop_id AND p.code = k.plan_code AND p.version = k.plan_version
$$;

CREATE FUNCTION redemption_json(r package_redemptions) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('redemption_id', r.redemption_id,
        'package_id', (SELECT k.package_id FROM packages k WHERE k.seq = r.package_seq),
        'uses', r.uses, 'recognised', r.recognised, 'order_id', r.order_id, 'at', rfc3339(r.at),
        'reversed_at', rfc3339(r.reversed_at), 'reversal_reason', r.reversal_reason)
$$;

-- Expire the (locked) customer's packages whose validity ended by p_now:
-- the uses left become expired, the deferred amount breakage, posted at
-- the instant of expiry.
CREATE FUNCTION package_catch_up(p_customer bigint, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k packages;
BEGIN
    FOR k IN SELECT * FROM packages WHERE customer_seq = p_customer AND status = 'active'
               AND valid_until <= p_now ORDER BY valid_until, seq LOOP
        UPDATE packages SET status = 'expired', closed_at = k.valid_until,
               uses_expired = uses - redeemed, breakage = deferred, deferred = 0
         WHERE seq = k.seq;
        PERFORM journal_post(k.shop_id, k.seq, NULL, 'package_expiry', k.package_id, k.valid_until,
                             jsonb_build_object('package_deferred', -k.deferred,
                                                'breakage', k.deferred));
    END LOOP;
END $$;

-- The customer's locked row and packages brought up to p_now; NULL: no customer.
CREATE FUNCTION package_customer(p_shop uuid, p_customer_id text, p_write boolean, p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := wallet_customer(p_shop, p_customer_id, p_write);
BEGIN
    IF cust IS NOT NULL THEN
        PERFORM package_catch_up(cust, p_now);
    END IF;
    RETURN cust;
END $$;

-- A purchase.  status: created, replayed, no_customer, conflict,
-- plan_unknown, plan_inactive, not_on_sale, plan_expired; body {package}.
CREATE FUNCTION package_buy(p_shop uuid, p_customer_id text, p_package_id text, p_plan text,
                            p_order text, p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust  bigint := package_customer(p_shop, p_customer_id, true, p_now);
    k     packages;
    p     package_plans;
    tz    text;
    price bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    PERFORM wallet_id_lock(p_shop, 'package', p_package_id);
    SELECT * INTO k FROM packages WHERE shop_id = p_shop AND package_id = p_package_id;
    IF FOUND THEN
        IF k.customer_seq <> cust OR k.plan_code <> p_plan OR k.order_id IS DISTINCT FROM p_order THEN
            status := 'conflict';
        ELSE
            status := 'replayed';
            body := json_build_object('package', package_json(k, p_customer_id));
        END IF;
        RETURN;
    END IF;
    SELECT * INTO p FROM package_plans WHERE shop_id = p_shop AND code = p_plan
     ORDER BY version DESC LIMIT 1 FOR SHARE;
    IF NOT FOUND THEN
        status := 'plan_unknown';
        RETURN;
    ELSIF NOT p.active THEN
        status := 'plan_inactive';
        RETURN;
    ELSIF p_now < p.sale_from OR p_now >= p.sale_until THEN
        status := 'not_on_sale';
        body := json_build_object('from', rfc3339(p.sale_from), 'until', rfc3339(p.sale_until));
        RETURN;
    ELSIF p.valid_until <= p_now THEN
        status := 'plan_expired';
        body := to_json(rfc3339(p.valid_until));
        RETURN;
    END IF;
    SELECT s.timezone INTO tz FROM shops s WHERE s.id = p_shop;
    price := CASE WHEN p_now < p.presale_until THEN p.presale_price ELSE p.price END;
    INSERT INTO packages (shop_id, package_id, customer_seq, plan_code, plan_version, order_id,
                          uses, price, purchased_at, valid_until, deferred)
    VALUES (p_shop, p_package_id, cust, p.code, p.version, p_order, p.uses, price, p_now,
            coalesce(p.valid_until,
                     ((p_now AT TIME ZONE tz)::date + p.valid_days + 1)::timestamp AT TIME ZONE tz),
            price)
    RETURNING * INTO k;
    PERFORM journal_post(p_shop, k.seq, NULL, 'package_purchase', p_package_id, p_now,
                         jsonb_build_object('package_deferred', price, 'cash', -price));
    status := 'created';
    body := json_build_object('package', package_json(k, p_customer_id));
END $$;

-- The customer's package (locked), after the catch-up; NULL: none.
CREATE FUNCTION package_of(p_shop uuid, p_customer bigint, p_package_id text) RETURNS packages
LANGUAGE sql AS $$
    SELECT * FROM packages WHERE shop_id = p_shop AND package_id = p_package_id
       AND customer_seq = p_customer FOR UPDATE
$$;

-- Redeem k uses.  status: created, replayed, no_customer, no_package,
-- conflict, expired, refunded (body: valid_until), visit_limit (body: the
-- limit), insufficient (body: uses left), period_limit (body: {quota,
-- used, remaining}); body {redemption, package}.
CREATE FUNCTION package_redeem(p_shop uuid, p_customer_id text, p_package_id text,
                               p_redemption_id text, p_uses integer, p_order text,
                               p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust  bigint := package_customer(p_shop, p_customer_id, true, p_now);
    k     packages;
    p     package_plans;
    r     package_redemptions;
    tz    text;
    used  bigint;
    amt   bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    k := package_of(p_shop, cust, p_package_id);
    IF k.seq IS NULL THEN
        status := 'no_package';
        RETURN;
    END IF;
    PERFORM wallet_id_lock(p_shop, 'redemption', p_redemption_id);
    SELECT * INTO r FROM package_redemptions WHERE shop_id = p_shop AND redemption_id = p_redemption_id;
    IF FOUND THEN
        IF r.package_seq <> k.seq OR r.uses <> p_uses OR r.order_id IS DISTINCT FROM p_order THEN
            status := 'conflict';
        ELSE
            status := 'replayed';
            body := json_build_object('redemption', redemption_json(r),
                                      'package', package_json(k, p_customer_id));
        END IF;
        RETURN;
    END IF;
    IF k.status IN ('expired', 'refunded') THEN
        status := k.status;
        body := to_json(rfc3339(k.valid_until));
        RETURN;
    END IF;
    SELECT * INTO p FROM package_plans
     WHERE shop_id = p_shop AND code = k.plan_code AND version = k.plan_version;
    IF p_uses > p.max_per_visit THEN
        status := 'visit_limit';
        body := to_json(p.max_per_visit);
        RETURN;
    ELSIF p_uses > k.uses - k.redeemed THEN
        status := 'insufficient';
        body := to_json(k.uses - k.redeemed);
        RETURN;
    END IF;
    IF p.period IS NOT NULL THEN
        SELECT s.timezone INTO tz FROM shops s WHERE s.id = p_shop;
        SELECT coalesce(sum(x.uses), 0) INTO used FROM package_redemptions x
         WHERE x.package_seq = k.seq AND x.reversed_at IS NULL
           AND x.at >= date_trunc(p.period, p_now AT TIME ZONE tz) AT TIME ZONE tz;
        IF used + p_uses > p.period_uses THEN
            status := 'period_limit';
            body := json_build_object('quota', p.period_uses, 'used', used,
                                      'remaining', greatest(p.period_uses - used, 0));
            RETURN;
        END IF;
    END IF;
    amt := package_recognised(k.price, k.redeemed + p_uses, k.uses)
           - package_recognised(k.price, k.redeemed, k.uses);
    INSERT INTO package_redemptions (shop_id, redemption_id, package_seq, uses, recognised,
                                     order_id, at)
    VALUES (p_shop, p_redemption_id, k.seq, p_uses, amt, p_order, p_now) RETURNING * INTO r;
    UPDATE packages SET redeemed = redeemed + p_uses, recognised = recognised + amt,
           deferred = deferred - amt,
           status = CASE WHEN redeemed + p_uses = uses THEN 'used_up' ELSE 'active' END
     WHERE seq = k.seq RETURNING * INTO k;
    PERFORM journal_post(p_shop, k.seq, NULL, 'redemption', p_redemption_id, p_now,
                         jsonb_build_object('package_deferred', -amt, 'revenue', amt));
    status := 'created';
    body := json_build_object('redemption', redemption_json(r), 'package', package_json(k, p_customer_id));
END $$;

-- An admin's reversal of a redemption: its uses back, the revenue the
-- rule recognised for them taken back.  status: created, replayed,
-- no_customer, no_package, no_redemption, expired, refunded.
CREATE FUNCTION package_reverse(p_shop uuid, p_customer_id text, p_package_id text,
                                p_redemption_id text, p_reason text, p_now timestamptz,
                                OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := package_customer(p_shop, p_customer_id, true, p_now);
    k    packages;
    r    package_redemptions;
    amt  bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    k := package_of(p_shop, cust, p_package_id);
    IF k.seq IS NULL THEN
        status := 'no_package';
        RETURN;
    END IF;
    SELECT * INTO r FROM package_redemptions
     WHERE shop_id = p_shop AND redemption_id = p_redemption_id AND package_seq = k.seq FOR UPDATE;
    IF NOT FOUND THEN
        status := 'no_redemption';
        RETURN;
    END IF;
    IF r.reversed_at IS NOT NULL THEN
        status := 'replayed';
    ELSIF k.status IN ('expired', 'refunded') OR k.valid_until <= p_now THEN
        -- uses given back after the validity ended would never be usable
        status := CASE WHEN k.status = 'refunded' THEN 'refunded' ELSE 'expired' END;
        body := to_json(rfc3339(k.valid_until));
        RETURN;
    ELSE
        amt := package_recognised(k.price, k.redeemed, k.uses)
               - package_recognised(k.price, k.redeemed - r.uses, k.uses);
        UPDATE package_redemptions SET reversed_at = p_now, reversal_reason = p_reason,
               reversal_amount = amt
         WHERE seq = r.seq RETURNING * INTO r;
        UPDATE packages SET redeemed = redeemed - r.uses, recognised = recognised - amt,
               deferred = deferred + amt, status = 'active'
         WHERE seq = k.seq RETURNING * INTO k;
        PERFORM journal_post(p_shop, k.seq, NULL, 'redemption_reversal', p_redemption_id, p_now,
                             jsonb_build_object('package_deferred', amt, 'revenue', -amt));
        status := 'created';
    END IF;
    body := json_build_object('redemption', redemption_json(r), 'package', package_json(k, p_customer_id));
END $$;

-- Refund the unused part (the stated rule): the deferred amount, price −
-- floor(price × n / uses), goes back; the uses left are refunded.  Once.
-- status: created, replayed, no_customer, no_package, expired, used_up.
CREATE FUNCTION package_refund(p_shop uuid, p_customer_id text, p_package_id text,
                               p_reason text, p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := package_customer(p_shop, p_customer_id, true, p_now);
    k    packages;
    amt  bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    k := package_of(p_shop, cust, p_package_id);
    IF k.seq IS NULL THEN
        status := 'no_package';
        RETURN;
    END IF;
    IF k.status = 'refunded' THEN
        status := 'replayed';
    ELSIF k.status IN ('expired', 'used_up') THEN
        status := k.status;
        body := to_json(rfc3339(k.valid_until));
        RETURN;
    ELSE
        amt := k.deferred;
        UPDATE packages SET status = 'refunded', closed_at = p_now, refunded = deferred,
               deferred = 0, uses_refunded = uses - redeemed, refund_reason = p_reason
         WHERE seq = k.seq RETURNING * INTO k;
        PERFORM journal_post(p_shop, k.seq, NULL, 'package_refund', p_package_id, p_now,
                             jsonb_build_object('package_deferred', -amt, 'cash', amt));
        status := 'created';
    END IF;
    body := json_build_object('package', package_json(k, p_customer_id),
        'refund', json_build_object('amount', k.refunded, 'uses', k.uses_refunded,
                                    'at', rfc3339(k.closed_at)));
END $$;

-- Reads.  status ok, no_customer, no_package; body: the package with its
-- redemptions, or {items} of the customer's packages (p_status filters).
CREATE FUNCTION package_get(p_shop uuid, p_customer_id text, p_package_id text, p_status text,
                            p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := package_customer(p_shop, p_customer_id, false, p_now);
    k    packages;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    status := 'ok';
    IF p_package_id IS NULL THEN
        body := json_build_object('items', coalesce((SELECT json_agg(package_json(x, p_customer_id)
                ORDER BY x.purchased_at, x.package_id COLLATE "C")
            FROM packages x WHERE x.customer_seq = cust AND (p_status IS NULL OR x.status = p_status)),
            '[]'));
        RETURN;
    END IF;
    SELECT * INTO k FROM packages WHERE shop_id = p_shop AND package_id = p_package_id
       AND customer_seq = cust;
    IF NOT FOUND THEN
        status := 'no_package';
        RETURN;
    END IF;
    body := (package_json(k, p_customer_id)::jsonb || jsonb_build_object('redemptions',
        coalesce((SELECT jsonb_agg(redemption_json(r)::jsonb ORDER BY r.at, r.seq)
                    FROM package_redemptions r WHERE r.package_seq = k.seq), '[]')))::json;
END $$;

-- ---- coupon packs ----------------------------------------------------------

CREATE FUNCTION coupon_pack_json(p coupon_packs) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', p.code, 'version', p.version, 'name', p.name,
        'count', p.count, 'amount', p.amount, 'min_spend', p.min_spend, 'validity', p.validity,
        'expires_after_months', p.expires_after_months, 'active', p.active,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = p.shop_id),
        'created_at', rfc3339(p.created_at))
$$;

CREATE FUNCTION coupon_status(c coupons, p_now timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN c.redeemed_at IS NOT NULL THEN 'redeemed'
                WHEN c.cancelled_at IS NOT NULL THEN 'cancelled'
                WHEN c.valid_until <= p_now THEN 'expired'
                WHEN c.valid_from IS NULL OR c.valid_from > p_now THEN 'upcoming'
                ELSE 'valid' END
$$;

CREATE FUNCTION coupon_json(c coupons, g coupon_grants, p_now timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('grant_id', g.grant_id, 'number', c.number, 'pack', g.pack_code,
        'amount', c.amount, 'min_spend', c.min_spend, 'valid_from', rfc3339(c.valid_from),
        'valid_until', rfc3339(c.valid_until), 'status', coupon_status(c, p_now),
        'redeemed_at', rfc3339(c.redeemed_at), 'order_id', c.order_id,
        'order_amount', c.order_amount)
$$;

CREATE FUNCTION coupon_grant_json(g coupon_grants, p_customer_id text, p_now timestamptz)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('grant_id', g.grant_id, 'customer_id', p_customer_id,
        'pack', g.pack_code, 'pack_version', g.pack_version, 'source', g.source,
        'topup_id', (SELECT t.topup_id FROM topups t WHERE t.seq = g.topup_seq),
        'issued_at', rfc3339(g.issued_at),
        'coupons', coalesce((SELECT json_agg(coupon_json(c, g, p_now) ORDER BY c.number)
                               FROM coupons c WHERE c.grant_seq = g.seq), '[]'))
$$;

-- Issue the latest version of pack p_pack to a customer (the windows are
-- stated in balances docs: calendar months of the shop's zone).
CREATE FUNCTION coupon_issue(p_shop uuid, p_customer bigint, p_grant_id text, p_pack text,
                             p_topup bigint, p_now timestamptz) RETURNS coupon_grants
LANGUAGE plpgsql AS $$
DECLARE
    p  coupon_packs;
    g  coupon_grants;
    tz text;
    m0 timestamp;
BEGIN
    SELECT * INTO p FROM coupon_packs WHERE shop_id = p_shop AND code = p_pack
     ORDER BY version DESC LIMIT 1 FOR SHARE;
    SELECT s.timezone INTO tz FROM shops s WHERE s.id = p_shop;
    m0 := date_trunc('month', p_now AT TIME ZONE tz);
    INSERT INTO coupon_grants (shop_id, grant_id, customer_seq, pack_code, pack_version, source,
                               topup_seq, issued_at)
    VALUES (p_shop, p_grant_id, p_customer, p.code, p.version,
            CASE WHEN p_topup IS NULL THEN 'grant' ELSE 'topup' END, p_topup, p_now)
    RETURNING * INTO g;
    INSERT INTO coupons (grant_seq, number, amount, min_spend, valid_from, valid_until)
    SELECT g.seq, k, p.amount, p.min_spend,
           CASE WHEN k = 1 THEN p_now
                WHEN p.validity = 'own_month' THEN (m0 + make_interval(months => k - 1)) AT TIME ZONE tz
           END,
           CASE WHEN p.validity = 'own_month' THEN (m0 + make_interval(months => k)) AT TIME ZONE tz
                ELSE (m0 + make_interval(months => p.expires_after_months)) AT TIME ZONE tz END
      FROM generate_series(1, p.count) k;
    RETURN g;
END $$;

-- A stand-alone grant.  status: created, replayed, no_customer, conflict,
-- pack_unknown, pack_inactive; body {grant}.
CREATE FUNCTION coupon_grant(p_shop uuid, p_customer_id text, p_grant_id text, p_pack text,
                             p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust   bigint := wallet_customer(p_shop, p_customer_id, true);
    g      coupon_grants;
    active boolean;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    PERFORM wallet_id_lock(p_shop, 'grant', p_grant_id);
    SELECT * INTO g FROM coupon_grants WHERE shop_id = p_shop AND grant_id = p_grant_id;
    IF FOUND THEN
        IF g.customer_seq <> cust OR g.pack_code <> p_pack OR g.source <> 'grant' THEN
            status := 'conflict';
        ELSE
            status := 'replayed';
            body := json_build_object('grant', coupon_grant_json(g, p_customer_id, p_now));
        END IF;
        RETURN;
    END IF;
    SELECT p.active INTO active FROM coupon_packs p WHERE p.shop_id = p_shop AND p.code = p_pack
     ORDER BY p.version DESC LIMIT 1;
    IF active IS NULL THEN
        status := 'pack_unknown';
    ELSIF NOT active THEN
        status := 'pack_inactive';
    ELSE
        g := coupon_issue(p_shop, cust, p_grant_id, p_pack, NULL, p_now);
        status := 'created';
        body := json_build_object('grant', coupon_grant_json(g, p_customer_id, p_now));
    END IF;
END $$;

-- Redeem coupon p_number of a grant on an order.  status: created,
-- replayed, no_customer, no_coupon, conflict, used, cancelled, expired
-- (body: valid_until), not_yet_valid (body: valid_from or null),
-- below_min (body: min_spend); body {coupon}.
CREATE FUNCTION coupon_redeem(p_shop uuid, p_customer_id text, p_grant_id text, p_number integer,
                              p_order text, p_order_amount bigint, p_now timestamptz,
                              OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := wallet_customer(p_shop, p_customer_id, true);
    g    coupon_grants;
    c    coupons;
    tz   text;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT * INTO g FROM coupon_grants WHERE shop_id = p_shop AND grant_id = p_grant_id
       AND customer_seq = cust;
    SELECT * INTO c FROM coupons WHERE grant_seq = g.seq AND number = p_number FOR UPDATE;
    IF NOT FOUND THEN
        status := 'no_coupon';
        RETURN;
    END IF;
    IF c.redeemed_at IS NOT NULL THEN
        IF c.order_id <> p_order THEN
            status := 'used';
            body := to_json(c.order_id);
        ELSIF c.order_amount <> p_order_amount THEN
            status := 'conflict';
        ELSE
            status := 'replayed';
            body := json_build_object('coupon', coupon_json(c, g, p_now));
        END IF;
        RETURN;
    END IF;
    status := coupon_status(c, p_now);
    IF status = 'expired' THEN
        body := to_json(rfc3339(c.valid_until));
        RETURN;
    ELSIF status = 'upcoming' THEN
        status := 'not_yet_valid';
        body := to_json(rfc3339(c.valid_from));
        RETURN;
    ELSIF status = 'cancelled' THEN
        RETURN;
    ELSIF p_order_amount < c.min_spend THEN
        status := 'below_min';
        body := to_json(c.min_spend);
        RETURN;
    END IF;
    UPDATE coupons SET redeemed_at = p_now, order_id = p_order, order_amount = p_order_amount
     WHERE seq = c.seq RETURNING * INTO c;
    -- in order, one a calendar month: the next becomes valid next month
    SELECT s.timezone INTO tz FROM shops s WHERE s.id = p_shop;
    UPDATE coupons n SET valid_from = (date_trunc('month', p_now AT TIME ZONE tz) + interval '1 month')
                                      AT TIME ZONE tz
      FROM coupon_packs p
     WHERE n.grant_seq = g.seq AND n.number = p_number + 1 AND n.valid_from IS NULL
       AND p.shop_id = g.shop_id AND p.code = g.pack_code AND p.version = g.pack_version
       AND p.validity = 'in_order'
       -- a month that starts after the grant ended is never valid
       AND (n.valid_until IS NULL OR n.valid_until > (date_trunc('month', p_now AT TIME ZONE tz)
                                                     + interval '1 month') AT TIME ZONE tz);
    PERFORM journal_post(p_shop, NULL, c.seq, 'coupon_redemption', g.grant_id || '#' || p_number,
                         p_now, jsonb_build_object('promotion', -c.amount, 'revenue', c.amount));
    status := 'created';
    body := json_build_object('coupon', coupon_json(c, g, p_now));
END $$;

-- Reads: a grant, or {items} of the customer's coupons (p_status filters).
-- status ok, no_customer, no_grant.
CREATE FUNCTION coupon_get(p_shop uuid, p_customer_id text, p_grant_id text, p_status text,
                           p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cust bigint;
    g    coupon_grants;
BEGIN
    SELECT c.seq INTO cust FROM customers c WHERE c.shop_id = p_shop AND c.id = p_customer_id;
    IF NOT FOUND THEN
        status := 'no_customer';
        RETURN;
    END IF;
    status := 'ok';
    IF p_grant_id IS NULL THEN
        body := json_build_object('items', coalesce((SELECT json_agg(coupon_json(c, g2, p_now)
                ORDER BY g2.issued_at, g2.grant_id COLLATE "C", c.number)
            FROM coupon_grants g2 JOIN coupons c ON c.grant_seq = g2.seq
           WHERE g2.customer_seq = cust
             AND (p_status IS NULL OR coupon_status(c, p_now) = p_status)), '[]'));
        RETURN;
    END IF;
    SELECT * INTO g FROM coupon_grants WHERE shop_id = p_shop AND grant_id = p_grant_id
       AND customer_seq = cust;
    IF NOT FOUND THEN
        status := 'no_grant';
        RETURN;
    END IF;
    body := coupon_grant_json(g, p_customer_id, p_now);
END $$;

-- ---- top-ups with a coupon pack --------------------------------------------

CREATE OR REPLACE FUNCTION topup_offer_json(o topup_offers) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', o.code, 'version', o.version, 'name', o.name,
        'min_topup', o.min_topup,
        'bonus', json_build_object('immediate', o.bonus_immediate,
            'installments', CASE WHEN o.inst_count IS NOT NULL THEN json_build_object(
                'count', o.inst_count, 'amount', o.inst_amount, 'every', o.inst_every,
                'interval', o.inst_interval) END,
            'installment_expiry', o.inst_expiry, 'expires_after_days', o.expires_after_days),
        'bonus_total', o.bonus_immediate + coalesce(o.inst_count * o.inst_amount, 0),
        'coupon_pack', o.coupon_pack,
        'limit_per_customer', o.limit_per_customer, 'active', o.active,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = o.shop_id),
        'created_at', rfc3339(o.created_at))
$$;

-- After wallet_topup in the same statement: a new top-up whose offer
-- gives a coupon pack issues it, if the pack is active (grant "topup:" +
-- the top-up id); the reply gains "coupons", the grant or null.
CREATE FUNCTION topup_coupons(p_shop uuid, p_customer_id text, p_topup_id text, p_status text,
                              p_body json, p_now timestamptz) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    t    topups;
    g    coupon_grants;
    pack text;
BEGIN
    IF p_status NOT IN ('created', 'replayed') THEN
        RETURN p_body;
    END IF;
    SELECT * INTO t FROM topups WHERE shop_id = p_shop AND topup_id = p_topup_id;
    SELECT * INTO g FROM coupon_grants WHERE topup_seq = t.seq;
    IF NOT FOUND AND p_status = 'created' THEN
        -- as coupon_grant does; stand-alone grants cannot take "topup:" ids
        PERFORM wallet_id_lock(p_shop, 'grant', 'topup:' || p_topup_id);
        -- an inactive pack is not issued, as coupon_grant refuses it
        SELECT o.coupon_pack INTO pack FROM topup_offers o
         WHERE o.shop_id = p_shop AND o.code = t.offer_code AND o.version = t.offer_version
           AND (SELECT p.active FROM coupon_packs p WHERE p.shop_id = p_shop AND p.code = o.coupon_pack
                 ORDER BY p.version DESC LIMIT 1);
        IF pack IS NOT NULL THEN
            g := coupon_issue(p_shop, (SELECT w.customer_seq FROM wallets w WHERE w.seq = t.wallet_seq),
                              'topup:' || p_topup_id, pack, t.seq, p_now);
        END IF;
    END IF;
    RETURN (p_body::jsonb || jsonb_build_object('coupons', CASE WHEN g.seq IS NOT NULL
        THEN coupon_grant_json(g, p_customer_id, p_now) END))::json;
END $$;

-- After wallet_topup_refund in the same statement: the top-up's coupons
-- not yet redeemed (nor expired) are cancelled with it.
CREATE FUNCTION topup_refund_coupons(p_shop uuid, p_topup_id text, p_status text, p_now timestamptz)
RETURNS void LANGUAGE sql AS $$
    UPDATE coupons c SET cancelled_at = p_now
      FROM coupon_grants g JOIN topups t ON t.seq = g.topup_seq
     WHERE p_status = 'created' AND t.shop_id = p_shop AND t.topup_id = p_topup_id
       AND c.grant_seq = g.seq AND c.redeemed_at IS NULL AND c.cancelled_at IS NULL
       AND (c.valid_until IS NULL OR c.valid_until > p_now)
$$;

-- ---- the ledger's checks and reports ---------------------------------------

CREATE OR REPLACE FUNCTION ledger_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT j.shop_id, 'unbalanced journal row', j.kind || ' ' || j.ref || ': ' || sum(e.amount)
      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
     WHERE p_shop IS NULL OR j.shop_id = p_shop
     GROUP BY j.seq HAVING sum(e.amount) <> 0
    UNION ALL
    SELECT w.shop_id, 'wallet balance differs from its journal',
           'wallet ' || w.seq || ': cached ' || w.principal || '/' || w.bonus_available || '/'
           || w.bonus_scheduled || ', journal ' || x.p || '/' || x.a || '/' || x.s
      FROM wallets w,
           LATERAL (SELECT coalesce(sum(e.amount) FILTER (WHERE e.account = 'principal'), 0) p,
                           coalesce(sum(e.amount) FILTER (WHERE e.account = 'bonus_available'), 0) a,
                           coalesce(sum(e.amount) FILTER (WHERE e.account = 'bonus_scheduled'), 0) s
                      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
                     WHERE j.wallet_seq = w.seq) x
     WHERE (p_shop IS NULL OR w.shop_id = p_shop)
       AND (w.principal, w.bonus_available, w.bonus_scheduled) IS DISTINCT FROM (x.p, x.a, x.s)
    UNION ALL
    SELECT w.shop_id, 'bonus installments differ from the wallet',
           'wallet ' || w.seq || ': bonus_available ' || w.bonus_available || ', released remaining '
           || coalesce(sum(i.remaining) FILTER (WHERE i.status = 'released'), 0)
           || ', bonus_scheduled ' || w.bonus_scheduled || ', pending '
           || coalesce(sum(i.amount) FILTER (WHERE i.status = 'pending'), 0)
      FROM wallets w LEFT JOIN bonus_installments i ON i.wallet_seq = w.seq
     WHERE p_shop IS NULL OR w.shop_id = p_shop
     GROUP BY w.seq
    HAVING w.bonus_available <> coalesce(sum(i.remaining) FILTER (WHERE i.status = 'released'), 0)
        OR w.bonus_scheduled <> coalesce(sum(i.amount) FILTER (WHERE i.status = 'pending'), 0)
    UNION ALL
    -- packages: the cached figures are the journal's (deferred, revenue,
    -- breakage, refund, the price paid); the recognition rule holds; the
    -- redemptions add up (uses and revenue); the uses and status agree
    SELECT k.shop_id, 'package differs from its journal or its rule',
           'package ' || k.package_id || ': deferred ' || k.deferred || ', journal ' || x.d
           || ', recognised ' || k.recognised || ' (rule ' || package_recognised(k.price, k.redeemed, k.uses)
           || '), breakage ' || k.breakage || '/' || x.b || ', refunded ' || k.refunded || '/' || x.r
           || ', redeemed ' || k.redeemed || ' (redemptions ' || y.n || ')'
      FROM packages k,
           LATERAL (SELECT coalesce(sum(e.amount) FILTER (WHERE e.account = 'package_deferred'), 0) d,
                           coalesce(sum(e.amount) FILTER (WHERE e.account = 'breakage'), 0) b,
                           coalesce(sum(e.amount) FILTER (WHERE e.account = 'cash'
                                                           AND j.kind = 'package_refund'), 0) r,
                           coalesce(sum(e.amount) FILTER (WHERE e.account = 'revenue'), 0) rev,
                           coalesce(-sum(e.amount) FILTER (WHERE e.account = 'cash'
                                                            AND j.kind = 'package_purchase'), 0) cash
                      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
                     WHERE j.package_seq = k.seq) x,
           LATERAL (SELECT coalesce(sum(r.uses) FILTER (WHERE r.reversed_at IS NULL), 0) n,
                           coalesce(sum(r.recognised - coalesce(r.reversal_amount, 0)), 0) rec
                      FROM package_redemptions r WHERE r.package_seq = k.seq) y
     WHERE (p_shop IS NULL OR k.shop_id = p_shop)
       AND (k.deferred <> x.d OR k.breakage <> x.b OR k.refunded <> x.r OR k.redeemed <> y.n
            OR k.recognised <> package_recognised(k.price, k.redeemed, k.uses)
            OR k.recognised <> x.rev OR x.cash <> k.price OR k.recognised <> y.rec
            OR (k.status = 'used_up') <> (k.redeemed = k.uses AND k.status IN ('active', 'used_up'))
            OR k.redeemed + k.uses_expired + k.uses_refunded > k.uses
            OR (k.status = 'expired' AND k.redeemed + k.uses_expired <> k.uses)
            OR (k.status = 'refunded' AND k.redeemed + k.uses_refunded <> k.uses))
    UNION ALL
    -- coupons: a redeemed one has its one redemption row for its amount, the others none
    SELECT g.shop_id, 'coupon differs from its journal',
           'coupon ' || g.grant_id || '#' || c.number || ': ' || coalesce(c.redeemed_at::text, 'not redeemed')
           || ', journal rows ' || x.n || ' for ' || x.cost
      FROM coupon_grants g JOIN coupons c ON c.grant_seq = g.seq,
           LATERAL (SELECT count(DISTINCT j.seq) n,
                           coalesce(-sum(e.amount) FILTER (WHERE e.account = 'promotion'), 0) cost
                      FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
                     WHERE j.coupon_seq = c.seq) x
     WHERE (p_shop IS NULL OR g.shop_id = p_shop)
       AND CASE WHEN c.redeemed_at IS NULL THEN x.n <> 0 ELSE x.n <> 1 OR x.cost <> c.amount END
$$;

-- Prepaid liability at p_at: the wallets' figures (their rows only), the
-- packages' and the coupons'.
CREATE OR REPLACE FUNCTION prepaid_liability(p_shop uuid, p_at timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT j.kind, j.ref, j.wallet_seq, j.package_seq, j.coupon_seq, e.account, e.amount
          FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
         WHERE j.shop_id = p_shop AND j.at < p_at),
    tot AS (
        SELECT coalesce(sum(amount) FILTER (WHERE account = 'principal'), 0) AS principal,
               coalesce(sum(amount) FILTER (WHERE account = 'bonus_available'), 0) AS available,
               coalesce(sum(amount) FILTER (WHERE account = 'bonus_scheduled'), 0) AS scheduled,
               coalesce(sum(amount) FILTER (WHERE account = 'breakage'), 0) AS breakage,
               coalesce(-sum(amount) FILTER (WHERE account = 'cash'), 0) AS cash,
               coalesce(-sum(amount) FILTER (WHERE account = 'promotion'), 0) AS promotion,
               coalesce(sum(amount) FILTER (WHERE account = 'revenue'), 0) AS revenue,
               coalesce(-sum(amount) FILTER (WHERE account = 'adjustment'), 0) AS adjustment,
               (SELECT count(*) FROM wallets w WHERE w.shop_id = p_shop AND w.opened_at < p_at)
                   AS wallets
          FROM e WHERE e.wallet_seq IS NOT NULL),
    pk AS (
        SELECT coalesce(-sum(amount) FILTER (WHERE kind = 'package_purchase' AND account = 'cash'), 0)
                   AS cash,
               coalesce(sum(amount) FILTER (WHERE account = 'revenue'), 0) AS recognised,
               coalesce(sum(amount) FILTER (WHERE account = 'breakage'), 0) AS breakage,
               coalesce(sum(amount) FILTER (WHERE kind = 'package_refund' AND account = 'cash'), 0)
                   AS refunded,
               coalesce(sum(amount) FILTER (WHERE account = 'package_deferred'), 0) AS deferred,
               (SELECT count(*) FROM packages k WHERE k.shop_id = p_shop AND k.purchased_at < p_at)
                   AS sold
          FROM e WHERE e.package_seq IS NOT NULL),
    cp AS (
        SELECT count(*) FILTER (WHERE account = 'revenue') AS redeemed,
               coalesce(-sum(amount) FILTER (WHERE account = 'promotion'), 0) AS cost
          FROM e WHERE e.coupon_seq IS NOT NULL),
    -- the bonus of each offer's top-ups, from the movements that name the top-up
    per AS (
        SELECT t.offer_code AS offer,
               coalesce(-sum(e.amount) FILTER (WHERE e.kind = 'topup' AND e.account = 'promotion'), 0)
                   AS granted,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'release' AND e.account = 'bonus_available'), 0)
                   AS released,
               coalesce(sum(e.amount) FILTER (WHERE e.account = 'bonus_scheduled'), 0) AS scheduled,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'expiry' AND e.account = 'breakage'), 0)
                   AS expired,
               coalesce(sum(e.amount) FILTER (WHERE e.kind = 'topup_refund' AND e.account = 'promotion'), 0)
                   AS cancelled
          FROM e JOIN topups t ON t.shop_id = p_shop AND t.topup_id = e.ref
         WHERE e.kind IN ('topup', 'release', 'expiry', 'topup_refund') AND t.offer_code IS NOT NULL
         GROUP BY t.offer_code)
    SELECT json_build_object(
        'principal_outstanding', tot.principal, 'bonus_available', tot.available,
        'bonus_scheduled', tot.scheduled, 'bonus_expired', tot.breakage,
        'cash_received', tot.cash, 'bonus_granted', tot.promotion, 'spent', tot.revenue,
        'adjustments', tot.adjustment, 'wallets', tot.wallets,
        'by_offer', coalesce((SELECT json_agg(json_build_object('offer', per.offer,
                'bonus_granted', per.granted, 'bonus_released', per.released,
                'bonus_scheduled', per.scheduled, 'bonus_expired', per.expired,
                'bonus_cancelled', per.cancelled) ORDER BY per.offer COLLATE "C")
            FROM per), '[]'),
        'packages', json_build_object('packages_sold', pk.sold, 'cash_received', pk.cash,
            'recognised', pk.recognised, 'breakage', pk.breakage, 'refunded', pk.refunded,
            'deferred', pk.deferred),
        'coupons', json_build_object('redeemed', cp.redeemed, 'promotion_cost', cp.cost))
      FROM tot, pk, cp
$$;

-- Breakage per plan at p_at (after a sweep): uses from the packages and
-- redemptions dated before it, money from the journal.
CREATE FUNCTION package_breakage(p_shop uuid, p_at timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH k AS (
        SELECT k.*,
               (SELECT coalesce(sum(r.uses) FILTER (WHERE r.at < p_at), 0)
                       - coalesce(sum(r.uses) FILTER (WHERE r.reversed_at < p_at), 0)
                  FROM package_redemptions r WHERE r.package_seq = k.seq) AS used
          FROM packages k WHERE k.shop_id = p_shop AND k.purchased_at < p_at),
    m AS (
        SELECT j.package_seq,
               coalesce(-sum(e.amount) FILTER (WHERE j.kind = 'package_purchase' AND e.account = 'cash'), 0) AS cash,
               coalesce(sum(e.amount) FILTER (WHERE e.account = 'revenue'), 0) AS recognised,
               coalesce(sum(e.amount) FILTER (WHERE e.account = 'breakage'), 0) AS breakage,
               coalesce(sum(e.amount) FILTER (WHERE j.kind = 'package_refund' AND e.account = 'cash'), 0) AS refunded,
               coalesce(sum(e.amount) FILTER (WHERE e.account = 'package_deferred'), 0) AS deferred
          FROM journal j JOIN journal_entries e ON e.journal_seq = j.seq
         WHERE j.shop_id = p_shop AND j.package_seq IS NOT NULL AND j.at < p_at
         GROUP BY j.package_seq),
    g AS (
        SELECT GROUPING(k.plan_code) AS total, k.plan_code AS plan, count(*) AS sold,
               coalesce(sum(k.uses), 0) AS uses, coalesce(sum(k.used), 0) AS redeemed,
               coalesce(sum(k.uses_expired) FILTER (WHERE k.status = 'expired' AND k.closed_at < p_at), 0) AS expired,
               coalesce(sum(k.uses_refunded) FILTER (WHERE k.status = 'refunded' AND k.closed_at < p_at), 0) AS refunded_uses,
               coalesce(sum(m.cash), 0) AS cash, coalesce(sum(m.recognised), 0) AS recognised,
               coalesce(sum(m.breakage), 0) AS breakage, coalesce(sum(m.refunded), 0) AS refunded,
               coalesce(sum(m.deferred), 0) AS deferred
          FROM k LEFT JOIN m ON m.package_seq = k.seq
         GROUP BY ROLLUP (k.plan_code)),
    j AS (
        SELECT g.total, g.plan, json_build_object('packages_sold', g.sold, 'uses_sold', g.uses,
            'uses_redeemed', g.redeemed, 'uses_expired', g.expired, 'uses_refunded', g.refunded_uses,
            'uses_outstanding', g.uses - g.redeemed - g.expired - g.refunded_uses,
            'usage_rate', rate_json(g.redeemed, g.uses), 'breakage_rate', rate_json(g.expired, g.uses),
            'cash_received', g.cash, 'revenue_recognised', g.recognised,
            'breakage_revenue', g.breakage, 'refunded', g.refunded, 'deferred', g.deferred)::jsonb AS o
          FROM g)
    SELECT json_build_object(
        'plans', coalesce((SELECT json_agg(jsonb_build_object('plan', j.plan) || j.o
                                           ORDER BY j.plan COLLATE "C")
                             FROM j WHERE j.total = 0), '[]'),
        -- ROLLUP gives the grand total also over no packages
        'totals', (SELECT j.o FROM j WHERE j.total = 1))
$$;

-- Coupon redemption per pack at p_at: overall, by coupon number, and by
-- the local month each coupon's validity began.
CREATE FUNCTION coupon_redemption(p_shop uuid, p_at timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT g.pack_code AS pack, c.number, c.amount,
               to_char(c.valid_from AT TIME ZONE s.timezone, 'YYYY-MM') AS month,
               c.valid_from < p_at AS began,
               CASE WHEN c.redeemed_at < p_at THEN 'redeemed'
                    WHEN c.cancelled_at < p_at THEN 'cancelled'
                    WHEN c.valid_until <= p_at THEN 'expired'
                    ELSE 'outstanding' END AS state
          FROM coupon_grants g JOIN coupons c ON c.grant_seq = g.seq JOIN shops s ON s.id = g.shop_id
         WHERE g.shop_id = p_shop AND g.issued_at < p_at),
    per_pack AS (
        SELECT pack, count(*) AS issued, count(*) FILTER (WHERE state = 'redeemed') AS redeemed,
               count(*) FILTER (WHERE state = 'expired') AS expired,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE state = 'outstanding') AS outstanding,
               coalesce(sum(amount) FILTER (WHERE state = 'redeemed'), 0) AS cost
          FROM c GROUP BY pack)
    SELECT json_build_object('packs', coalesce(json_agg(json_build_object('pack', pp.pack,
            'issued', pp.issued, 'redeemed', pp.redeemed, 'expired', pp.expired,
            'cancelled', pp.cancelled, 'outstanding', pp.outstanding,
            'redemption_rate', rate_json(pp.redeemed, pp.issued), 'promotion_cost', pp.cost,
            'by_number', (SELECT json_agg(json_build_object('number', n.number, 'issued', n.issued,
                    'redeemed', n.redeemed, 'expired', n.expired, 'cancelled', n.cancelled,
                    'outstanding', n.issued - n.redeemed - n.expired - n.cancelled,
                    'redemption_rate', rate_json(n.redeemed, n.issued)) ORDER BY n.number)
                FROM (SELECT c.number, count(*) AS issued,
                             count(*) FILTER (WHERE c.state = 'redeemed') AS redeemed,
                             count(*) FILTER (WHERE c.state = 'expired') AS expired,
                             count(*) FILTER (WHERE c.state = 'cancelled') AS cancelled
                        FROM c WHERE c.pack = pp.pack GROUP BY c.number) n),
            'by_month', coalesce((SELECT json_agg(json_build_object('month', mo.month, 'valid', mo.valid,
                    'redeemed', mo.redeemed, 'expired', mo.expired,
                    'outstanding', mo.valid - mo.redeemed - mo.expired - mo.cancelled,
                    'redemption_rate', rate_json(mo.redeemed, mo.valid)) ORDER BY mo.month)
                FROM (SELECT c.month, count(*) AS valid,
                             count(*) FILTER (WHERE c.state = 'redeemed') AS redeemed,
                             count(*) FILTER (WHERE c.state = 'expired') AS expired,
                             count(*) FILTER (WHERE c.state = 'cancelled') AS cancelled
                        FROM c WHERE c.pack = pp.pack AND c.began GROUP BY c.month) mo), '[]'))
            ORDER BY pp.pack COLLATE "C"), '[]'))
      FROM per_pack pp
$$;

-- ---- the sweeps in batches ---------------------------------------------------

-- Everything due in the prepaid products of up to p_limit customers (of
-- p_shop, or all): the wallets' releases and expiries and the packages'
-- expiries, customer by customer in customer order (the order every other
-- locker keeps, so sweeps and bulk writes never deadlock), each under the
-- customer's row lock.  rebuyd calls it again while a batch comes back
-- full, each call its own transaction, so a sweep never holds many
-- customers' locks at once.  Returns the customers done.
CREATE FUNCTION prepaid_sweep(p_shop uuid, p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
    w bigint;
    n integer := 0;
BEGIN
    FOR c IN SELECT d.customer_seq FROM (
                 SELECT wa.customer_seq FROM bonus_installments i JOIN wallets wa ON wa.seq = i.wallet_seq
                  WHERE (p_shop IS NULL OR wa.shop_id = p_shop)
                    AND ((i.status = 'pending' AND least(i.due_at, i.expires_at) <= p_now)
                         OR (i.status = 'released' AND i.remaining > 0 AND i.expires_at <= p_now))
                 UNION
                 SELECT k.customer_seq FROM packages k
                  WHERE k.status = 'active' AND k.valid_until <= p_now
                    AND (p_shop IS NULL OR k.shop_id = p_shop)) d
              ORDER BY 1 LIMIT p_limit LOOP
        PERFORM 1 FROM customers WHERE seq = c FOR NO KEY UPDATE;
        SELECT wa.seq INTO w FROM wallets wa WHERE wa.customer_seq = c;
        IF FOUND THEN
            PERFORM wallet_catch_up(w, p_now);
        END IF;
        PERFORM package_catch_up(c, p_now);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
