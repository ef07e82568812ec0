-- Prepaid wallets on a double-entry ledger (issue 7): versioned top-up
-- offers, top-ups with their bonus schedules, spends, and the journal every
-- movement is posted to.

-- Offers are versioned: a change is a new row; top-ups point at theirs.
CREATE TABLE topup_offers (
    shop_id            uuid NOT NULL REFERENCES shops (id),
    code               text NOT NULL CHECK (code ~ '^[a-z0-9-]+$' AND length(code) <= 64),
    version            integer NOT NULL CHECK (version >= 1),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    min_topup          bigint NOT NULL CHECK (min_topup BETWEEN 0 AND 1000000000000),
    bonus_immediate    bigint NOT NULL CHECK (bonus_immediate BETWEEN 0 AND 1000000000000),
    inst_count         integer CHECK (inst_count BETWEEN 1 AND 120),
    inst_amount        bigint CHECK (inst_amount BETWEEN 1 AND 1000000000000),
    inst_every         text CHECK (inst_every IN ('day', 'week', 'month')),
    inst_interval      integer CHECK (inst_interval BETWEEN 1 AND 12),
    inst_expiry        text NOT NULL CHECK (inst_expiry IN ('none', 'end_of_period')),
    expires_after_days integer CHECK (expires_after_days BETWEEN 1 AND 3660),
    limit_per_customer integer CHECK (limit_per_customer BETWEEN 1 AND 1000),
    active             boolean NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT rebuy_now(),
    PRIMARY KEY (shop_id, code, version),
    CHECK ((inst_count IS NULL) = (inst_amount IS NULL) AND (inst_count IS NULL) = (inst_every IS NULL)
           AND (inst_count IS NULL) = (inst_interval IS NULL))
);
COMMENT ON TABLE topup_offers IS 'Top-up offers, one row per version: changing an offer never changes top-ups made';

-- One wallet per customer per shop; the cached balances equal the journal.
CREATE TABLE wallets (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id         uuid NOT NULL REFERENCES shops (id),
    customer_seq    bigint NOT NULL UNIQUE REFERENCES customers (seq),
    principal       bigint NOT NULL DEFAULT 0 CHECK (principal >= 0),
    bonus_available bigint NOT NULL DEFAULT 0 CHECK (bonus_available >= 0),
    bonus_scheduled bigint NOT NULL DEFAULT 0 CHECK (bonus_scheduled >= 0),
    opened_at       timestamptz NOT NULL
);
COMMENT ON COLUMN wallets.principal IS 'Money paid in and not spent: deferred revenue (cached journal sum)';

-- The journal: one row per movement, its entries below.  Balances after
-- the movement are kept for the statement.
CREATE TABLE journal (
    seq                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id               uuid NOT NULL REFERENCES shops (id),
    wallet_seq            bigint NOT NULL REFERENCES wallets (seq),
    kind                  text NOT NULL CHECK (kind IN ('topup', 'release', 'spend', 'expiry',
                                                    'refund', 'topup_refund', 'adjustment')),
    ref                   text NOT NULL,
    at                    timestamptz NOT NULL,
    principal_after       bigint NOT NULL,
    bonus_available_after bigint NOT NULL,
    bonus_scheduled_after bigint NOT NULL
);
CREATE INDEX journal_wallet ON journal (wallet_seq, at, seq);

CREATE TABLE journal_entries (
    journal_seq bigint NOT NULL REFERENCES journal (seq),
    account     text NOT NULL CHECK (account IN ('principal', 'bonus_available', 'bonus_scheduled',
                                                 'cash', 'promotion', 'revenue', 'breakage',
                                                 'adjustment')),
    amount      bigint NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (journal_seq, account)
);
COMMENT ON TABLE journal_entries IS 'Double entry: the entries of a journal row sum to zero; wallet accounts and the shop''s';

-- Entries are never updated or deleted.
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER journal_immutable BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER journal_entries_immutable BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();

CREATE TABLE topups (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id       uuid NOT NULL REFERENCES shops (id),
    topup_id      text NOT NULL CHECK (length(topup_id) BETWEEN 1 AND 128),
    wallet_seq    bigint NOT NULL REFERENCES wallets (seq),
    amount        bigint NOT NULL CHECK (amount > 0),
    offer_code    text,
    offer_version integer,
    bonus_total   bigint NOT NULL CHECK (bonus_total >= 0),
    created_at    timestamptz NOT NULL,
    -- a refund of the whole top-up (see wallet_topup_refund)
    refunded_at        timestamptz,
    principal_returned bigint CHECK (principal_returned BETWEEN 0 AND amount),
    bonus_cancelled    bigint CHECK (bonus_cancelled >= 0),
    bonus_clawed_back  bigint CHECK (bonus_clawed_back >= 0),
    UNIQUE (shop_id, topup_id),
    FOREIGN KEY (shop_id, offer_code, offer_version) REFERENCES topup_offers (shop_id, code, version)
);
CREATE INDEX topups_wallet ON topups (wallet_seq, offer_code);

-- The bonus schedule of a top-up: k = 0 the immediate part, 1.. the installments.
CREATE TABLE bonus_installments (
    topup_seq  bigint NOT NULL REFERENCES topups (seq),
    k          integer NOT NULL CHECK (k >= 0),
    wallet_seq bigint NOT NULL REFERENCES wallets (seq),
    amount     bigint NOT NULL CHECK (amount > 0),
    due_at     timestamptz NOT NULL,
    expires_at timestamptz,
    status     text NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'released', 'expired', 'cancelled')),
    remaining  bigint NOT NULL DEFAULT 0 CHECK (remaining BETWEEN 0 AND amount),
    PRIMARY KEY (topup_seq, k),
    CHECK (status = 'released' OR remaining = 0)
);
-- what is due next in a wallet: pending ones by due time, released ones by expiry
CREATE INDEX bonus_installments_due ON bonus_installments (wallet_seq, due_at) WHERE status = 'pending';
CREATE INDEX bonus_installments_released ON bonus_installments (wallet_seq, expires_at)
    WHERE status = 'released';

CREATE TABLE spends (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id        uuid NOT NULL REFERENCES shops (id),
    spend_id       text NOT NULL CHECK (length(spend_id) BETWEEN 1 AND 128),
    wallet_seq     bigint NOT NULL REFERENCES wallets (seq),
    amount         bigint NOT NULL CHECK (amount > 0),
    from_principal bigint NOT NULL CHECK (from_principal >= 0),
    from_bonus     bigint NOT NULL CHECK (from_bonus >= 0),
    order_id       text,
    created_at     timestamptz NOT NULL,
    refunded       bigint NOT NULL DEFAULT 0,
    UNIQUE (shop_id, spend_id),
    CHECK (from_principal + from_bonus = amount),
    CHECK (refunded BETWEEN 0 AND amount)
);

-- refunds of a spend, each back to the buckets the spend took from
CREATE TABLE spend_refunds (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id      uuid NOT NULL,
    refund_id    text NOT NULL CHECK (length(refund_id) BETWEEN 1 AND 128),
    spend_seq    bigint NOT NULL REFERENCES spends (seq),
    amount       bigint NOT NULL CHECK (amount > 0),
    to_principal bigint NOT NULL CHECK (to_principal >= 0),
    to_bonus     bigint NOT NULL CHECK (to_bonus >= 0),
    to_breakage  bigint NOT NULL CHECK (to_breakage >= 0),
    created_at   timestamptz NOT NULL,
    UNIQUE (shop_id, refund_id),
    CHECK (to_principal + to_bonus + to_breakage = amount)
);

CREATE TABLE wallet_adjustments (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id       uuid NOT NULL,
    adjustment_id text NOT NULL CHECK (length(adjustment_id) BETWEEN 1 AND 128),
    wallet_seq    bigint NOT NULL REFERENCES wallets (seq),
    amount        bigint NOT NULL CHECK (amount <> 0),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created_at    timestamptz NOT NULL,
    UNIQUE (shop_id, adjustment_id)
);
-- which installments a spend's bonus came from (for refunds)
CREATE TABLE spend_allocations (
    spend_seq bigint NOT NULL REFERENCES spends (seq),
    topup_seq bigint NOT NULL,
    k         integer NOT NULL,
    amount    bigint NOT NULL CHECK (amount > 0),
    refunded  bigint NOT NULL DEFAULT 0 CHECK (refunded BETWEEN 0 AND amount),
    PRIMARY KEY (spend_seq, topup_seq, k),
    FOREIGN KEY (topup_seq, k) REFERENCES bonus_installments (topup_seq, k)
);

-- Post one movement: the wallet's deltas and the shop's counter-entries
-- (p_shop_entries: {"cash": -500, …}).  Refuses entries that do not sum to
-- zero; the wallet's CHECKs refuse a balance below zero.  The wallet row
-- must be locked by the caller.
CREATE FUNCTION ledger_post(p_wallet bigint, p_kind text, p_ref text, p_at timestamptz,
                            p_principal bigint, p_available bigint, p_scheduled bigint,
                            p_shop_entries jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    w     wallets;
    j     bigint;
    total numeric;
BEGIN
    SELECT p_principal + p_available + p_scheduled + coalesce(sum(e.value::bigint), 0) INTO total
      FROM jsonb_each_text(p_shop_entries) e;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger: % % does not balance (%)', p_kind, p_ref, total;
    END IF;
    UPDATE wallets SET principal = principal + p_principal,
           bonus_available = bonus_available + p_available,
           bonus_scheduled = bonus_scheduled + p_scheduled
     WHERE seq = p_wallet RETURNING * INTO w;
    INSERT INTO journal (shop_id, wallet_seq, kind, ref, at, principal_after, bonus_available_after,
                         bonus_scheduled_after)
    VALUES (w.shop_id, p_wallet, p_kind, p_ref, p_at, w.principal, w.bonus_available, w.bonus_scheduled)
    RETURNING seq INTO j;
    INSERT INTO journal_entries (journal_seq, account, amount)
    SELECT j, a.account, a.amount
      FROM (VALUES ('principal', p_principal), ('bonus_available', p_available),
                   ('bonus_scheduled', p_scheduled)) a(account, amount)
     WHERE a.amount <> 0
    UNION ALL
    SELECT j, e.key, e.value::bigint FROM jsonb_each_text(p_shop_entries) e WHERE e.value::bigint <> 0;
    RETURN j;
END $$;

-- Bring a (locked) wallet up to p_now: every release and expiry due by
-- then, one at a time in time order, each posted at its own instant.
CREATE FUNCTION wallet_catch_up(p_wallet bigint, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e    record;
    tid  text;
BEGIN
    LOOP
        SELECT i.topup_seq, i.k, i.amount, i.status, i.remaining, x.at, x.what INTO e
          FROM bonus_installments i,
               LATERAL (SELECT CASE WHEN i.status = 'released' THEN i.expires_at
                                    ELSE least(i.due_at, i.expires_at) END AS at,
                               CASE WHEN i.status = 'released' THEN 'expire_available'
                                    WHEN i.expires_at <= i.due_at THEN 'expire_scheduled'
                                    ELSE 'release' END AS what) x
         WHERE i.wallet_seq = p_wallet
           AND (i.status = 'pending' OR (i.status = 'released' AND i.remaining > 0
                                         AND i.expires_at IS NOT NULL))
           AND x.at <= p_now
         ORDER BY x.at, i.topup_seq, i.k LIMIT 1;
        EXIT WHEN NOT FOUND;
        SELECT t.topup_id INTO tid FROM topups t WHERE t.seq = e.topup_seq;
        IF e.what = 'release' THEN
            PERFORM ledger_post(p_wallet, 'release', tid, e.at, 0, e.amount, -e.amount, '{}');
            UPDATE bonus_installments SET status = 'released', remaining = amount
             WHERE topup_seq = e.topup_seq AND k = e.k;
        ELSIF e.what = 'expire_scheduled' THEN
            PERFORM ledger_post(p_wallet, 'expiry', tid, e.at, 0, 0, -e.amount,
                                jsonb_build_object('breakage', e.amount));
            UPDATE bonus_installments SET status = 'expired' WHERE topup_seq = e.topup_seq AND k = e.k;
        ELSE
            PERFORM ledger_post(p_wallet, 'expiry', tid, e.at, 0, -e.remaining, 0,
                                jsonb_build_object('breakage', e.remaining));
            UPDATE bonus_installments SET status = 'expired', remaining = 0
             WHERE topup_seq = e.topup_seq AND k = e.k;
        END IF;
    END LOOP;
END $$;

-- A top-up's installments per its offer (version) and the stated rule:
-- calendar steps in the shop's zone from t0, not chained.
CREATE FUNCTION topup_schedule(o topup_offers, t0 timestamptz, tz text)
RETURNS TABLE (k integer, amount bigint, due_at timestamptz, expires_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH whole AS (SELECT CASE WHEN o.expires_after_days IS NOT NULL
                               THEN t0 + make_interval(hours => 24 * o.expires_after_days) END AS at),
    steps AS (
        SELECT 0 AS k, o.bonus_immediate AS amount, t0 AS due_at, NULL::timestamptz AS period_end
         WHERE o.bonus_immediate > 0
        UNION ALL
        SELECT g, o.inst_amount,
               ((t0 AT TIME ZONE tz) + ((g - 1) * o.inst_interval || ' ' || o.inst_every)::interval)
                   AT TIME ZONE tz,
               ((t0 AT TIME ZONE tz) + (g * o.inst_interval || ' ' || o.inst_every)::interval)
                   AT TIME ZONE tz
          FROM generate_series(1, coalesce(o.inst_count, 0)) g)
    SELECT s.k, s.amount, s.due_at,
           CASE WHEN o.inst_expiry = 'end_of_period' AND s.k > 0
                THEN least(s.period_end, whole.at) ELSE whole.at END
      FROM steps s, whole
$$;

CREATE FUNCTION wallet_json(w wallets, p_customer_id text, p_currency text, p_now timestamptz)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('customer_id', p_customer_id, 'currency', p_currency,
        'principal', coalesce(w.principal, 0), 'bonus_available', coalesce(w.bonus_available, 0),
        'bonus_scheduled', coalesce(w.bonus_scheduled, 0),
        'available', coalesce(w.principal + w.bonus_available, 0),
        'opened_at', rfc3339(w.opened_at), 'as_of', rfc3339(p_now))
$$;

CREATE FUNCTION topup_json(t topups) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('topup_id', t.topup_id,
        'customer_id', (SELECT c.id FROM wallets w JOIN customers c ON c.seq = w.customer_seq
                         WHERE w.seq = t.wallet_seq),
        'amount', t.amount, 'offer', t.offer_code, 'offer_version', t.offer_version,
        'bonus_total', t.bonus_total, 'created_at', rfc3339(t.created_at),
        'refund', CASE WHEN t.refunded_at IS NOT NULL THEN json_build_object(
            'refunded_at', rfc3339(t.refunded_at), 'principal_returned', t.principal_returned,
            'bonus_cancelled', t.bonus_cancelled, 'bonus_clawed_back', t.bonus_clawed_back) END,
        'installments', coalesce((SELECT json_agg(json_build_object('k', i.k, 'amount', i.amount,
                'due_at', rfc3339(i.due_at), 'expires_at', rfc3339(i.expires_at),
                'status', i.status, 'remaining', i.remaining) ORDER BY i.k)
            FROM bonus_installments i WHERE i.topup_seq = t.seq), '[]'))
$$;

CREATE FUNCTION spend_json(s spends) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('spend_id', s.spend_id,
        'customer_id', (SELECT c.id FROM wallets w JOIN customers c ON c.seq = w.customer_seq
                         WHERE w.seq = s.wallet_seq),
        'amount', s.amount, 'from_principal', s.from_principal, 'from_bonus', s.from_bonus,
        'order_id', s.order_id, 'created_at', rfc3339(s.created_at))
$$;

CREATE FUNCTION topup_offer_json(o topup_offers) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('code', o.code, 'version', o.version, 'name', o.name,
        'min_topup', o.min_topup,
        'bonus', json_build_object('immediate', o.bonus_immediate,
            'installments', CASE WHEN o.inst_count IS NOT NULL THEN json_build_object(
                'count', o.inst_count, 'amount', o.inst_amount, 'every', o.inst_every,
                'interval', o.inst_interval) END,
            'installment_expiry', o.inst_expiry, 'expires_after_days', o.expires_after_days),
        'bonus_total', o.bonus_immediate + coalesce(o.inst_count * o.inst_amount, 0),
        'limit_per_customer', o.limit_per_customer, 'active', o.active,
        'currency', (SELECT s.currency FROM shops s WHERE s.id = o.shop_id),
        'created_at', rfc3339(o.created_at))
$$;

-- settings.balances.consumption_order: bonus_first (default), principal_first, proportional
CREATE OR REPLACE FUNCTION shop_json(s shops) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'name', s.name, 'currency', s.currency,
        'timezone', s.timezone,
        'settings', '{"rfm": {"method": "quintiles"}}'::jsonb || s.settings
            || jsonb_build_object('segments', shop_segment_settings(s),
                                  'balances', '{"consumption_order": "bonus_first"}'::jsonb
                                              || coalesce(s.settings -> 'balances', '{}')),
        'created_at', rfc3339(s.created_at), 'updated_at', rfc3339(s.updated_at))
$$;

-- An id the storefront chose (top-up, spend, refund, adjustment) is unique
-- in the shop: two customers sending the same one at once queue here, so
-- the second sees the first and gets a conflict, not a unique violation.
CREATE FUNCTION wallet_id_lock(p_shop uuid, p_kind text, p_id text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended(p_kind || ' ' || p_shop || ' ' || p_id, 0))
$$;

-- The customer's row, locked: every wallet call of one customer queues here,
-- so releases, expiries and spends never race.  p_write: refuse an erased customer.
CREATE FUNCTION wallet_customer(p_shop uuid, p_customer_id text, p_write boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    SELECT c.seq INTO v FROM customers c
     WHERE c.shop_id = p_shop AND c.id = p_customer_id AND (NOT p_write OR c.erased_at IS NULL)
       FOR NO KEY UPDATE;
    RETURN v;
END $$;

-- The Wallet of a customer at p_now, brought up to date first.  NULL: no customer.
CREATE FUNCTION wallet_read(p_shop uuid, p_customer_id text, p_now timestamptz) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := wallet_customer(p_shop, p_customer_id, false);
    w    wallets;
BEGIN
    IF cust IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO w FROM wallets WHERE customer_seq = cust;
    IF FOUND THEN
        PERFORM wallet_catch_up(w.seq, p_now);
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
    END IF;
    RETURN wallet_json(w, p_customer_id, (SELECT currency FROM shops WHERE id = p_shop), p_now);
END $$;

-- The statement: the wallet, every movement with its deltas and balances
-- after, and the schedule.  NULL: no customer.
CREATE FUNCTION wallet_statement(p_shop uuid, p_customer_id text, p_now timestamptz) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    wj  json := wallet_read(p_shop, p_customer_id, p_now);
    ws  bigint;
BEGIN
    IF wj IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT w.seq INTO ws FROM wallets w JOIN customers c ON c.seq = w.customer_seq
     WHERE c.shop_id = p_shop AND c.id = p_customer_id;
    RETURN json_build_object('wallet', wj,
        'movements', coalesce((SELECT json_agg(json_build_object('at', rfc3339(j.at), 'kind', j.kind,
                'ref', j.ref,
                'principal', coalesce((SELECT e.amount FROM journal_entries e
                                        WHERE e.journal_seq = j.seq AND e.account = 'principal'), 0),
                'bonus_available', coalesce((SELECT e.amount FROM journal_entries e
                                        WHERE e.journal_seq = j.seq AND e.account = 'bonus_available'), 0),
                'bonus_scheduled', coalesce((SELECT e.amount FROM journal_entries e
                                        WHERE e.journal_seq = j.seq AND e.account = 'bonus_scheduled'), 0),
                'balance_after', json_build_object('principal', j.principal_after,
                    'bonus_available', j.bonus_available_after,
                    'bonus_scheduled', j.bonus_scheduled_after)) ORDER BY j.seq)
            FROM journal j WHERE j.wallet_seq = ws), '[]'),
        'schedule', coalesce((SELECT json_agg(json_build_object('topup_id', t.topup_id, 'k', i.k,
                'amount', i.amount, 'due_at', rfc3339(i.due_at), 'expires_at', rfc3339(i.expires_at),
                'status', i.status, 'remaining', i.remaining) ORDER BY i.due_at, t.seq, i.k)
            FROM bonus_installments i JOIN topups t ON t.seq = i.topup_seq
           WHERE i.wallet_seq = ws), '[]'));
END $$;

-- A top-up (see balances1.md).  status: created, replayed, no_customer,
-- conflict, offer_unknown, offer_inactive, below_min (body: the minimum),
-- limit (body: the limit); body: {topup, wallet} on success.
CREATE FUNCTION wallet_topup(p_shop uuid, p_customer_id text, p_topup_id text, p_amount bigint,
                             p_offer text, p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust  bigint := wallet_customer(p_shop, p_customer_id, true);
    t     topups;
    o     topup_offers;
    w     wallets;
    tz    text;
    cur   text;
    bonus bigint := 0;
    n     integer;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT s.timezone, s.currency INTO tz, cur FROM shops s WHERE s.id = p_shop;
    PERFORM wallet_id_lock(p_shop, 'topup', p_topup_id);
    SELECT * INTO t FROM topups WHERE shop_id = p_shop AND topup_id = p_topup_id;
    IF FOUND THEN
        SELECT * INTO w FROM wallets WHERE seq = t.wallet_seq;
        IF w.customer_seq <> cust OR t.amount <> p_amount
           OR t.offer_code IS DISTINCT FROM p_offer THEN
            status := 'conflict';
            RETURN;
        END IF;
        PERFORM wallet_catch_up(w.seq, p_now);
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
        status := 'replayed';
        body := json_build_object('topup', topup_json(t),
                                  'wallet', wallet_json(w, p_customer_id, cur, p_now));
        RETURN;
    END IF;
    IF p_offer IS NOT NULL THEN
        SELECT * INTO o FROM topup_offers WHERE shop_id = p_shop AND code = p_offer
         ORDER BY version DESC LIMIT 1 FOR SHARE;
        IF NOT FOUND THEN
            status := 'offer_unknown';
            RETURN;
        ELSIF NOT o.active THEN
            status := 'offer_inactive';
            RETURN;
        ELSIF p_amount < o.min_topup THEN
            status := 'below_min';
            body := to_json(o.min_topup);
            RETURN;
        END IF;
        bonus := o.bonus_immediate + coalesce(o.inst_count * o.inst_amount, 0);
    END IF;
    INSERT INTO wallets (shop_id, customer_seq, opened_at) VALUES (p_shop, cust, p_now)
    ON CONFLICT (customer_seq) DO NOTHING;
    SELECT * INTO w FROM wallets WHERE customer_seq = cust FOR UPDATE;
    IF o.limit_per_customer IS NOT NULL THEN
        SELECT count(*) INTO n FROM topups WHERE wallet_seq = w.seq AND offer_code = p_offer;
        IF n >= o.limit_per_customer THEN
            status := 'limit';
            body := to_json(o.limit_per_customer);
            RETURN;
        END IF;
    END IF;
    PERFORM wallet_catch_up(w.seq, p_now);
    INSERT INTO topups (shop_id, topup_id, wallet_seq, amount, offer_code, offer_version,
                        bonus_total, created_at)
    VALUES (p_shop, p_topup_id, w.seq, p_amount, o.code, o.version, bonus, p_now)
    RETURNING * INTO t;
    IF p_offer IS NOT NULL THEN
        INSERT INTO bonus_installments (topup_seq, k, wallet_seq, amount, due_at, expires_at)
        SELECT t.seq, s.k, w.seq, s.amount, s.due_at, s.expires_at FROM topup_schedule(o, p_now, tz) s;
    END IF;
    PERFORM ledger_post(w.seq, 'topup', p_topup_id, p_now, p_amount, 0, bonus,
                        jsonb_build_object('cash', -p_amount, 'promotion', -bonus));
    PERFORM wallet_catch_up(w.seq, p_now); -- what is due at once (the immediate part)
    SELECT * INTO w FROM wallets WHERE seq = w.seq;
    status := 'created';
    body := json_build_object('topup', topup_json(t), 'wallet', wallet_json(w, p_customer_id, cur, p_now));
END $$;

-- A spend (see balances1.md).  status: created, replayed, no_customer,
-- conflict, insufficient (body: the available amounts); body: {spend, wallet}.
CREATE FUNCTION wallet_spend(p_shop uuid, p_customer_id text, p_spend_id text, p_amount bigint,
                             p_order_id text, p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust  bigint := wallet_customer(p_shop, p_customer_id, true);
    s     spends;
    w     wallets;
    cur   text;
    rule  text;
    a     bigint;
    b     bigint;
    left_ bigint;
    i     record;
    take  bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT sh.currency, coalesce(sh.settings -> 'balances' ->> 'consumption_order', 'bonus_first')
      INTO cur, rule FROM shops sh WHERE sh.id = p_shop;
    SELECT * INTO w FROM wallets WHERE customer_seq = cust FOR UPDATE;
    IF FOUND THEN
        PERFORM wallet_catch_up(w.seq, p_now);
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
    END IF;
    PERFORM wallet_id_lock(p_shop, 'spend', p_spend_id);
    SELECT * INTO s FROM spends WHERE shop_id = p_shop AND spend_id = p_spend_id;
    IF FOUND THEN
        IF s.wallet_seq IS DISTINCT FROM w.seq OR s.amount <> p_amount
           OR s.order_id IS DISTINCT FROM p_order_id THEN
            status := 'conflict';
            RETURN;
        END IF;
        status := 'replayed';
        body := json_build_object('spend', spend_json(s), 'wallet', wallet_json(w, p_customer_id, cur, p_now));
        RETURN;
    END IF;
    IF w.seq IS NULL OR p_amount > w.principal + w.bonus_available THEN
        status := 'insufficient';
        body := json_build_object('principal', coalesce(w.principal, 0),
                                  'bonus_available', coalesce(w.bonus_available, 0),
                                  'available', coalesce(w.principal + w.bonus_available, 0));
        RETURN;
    END IF;
    IF rule = 'principal_first' THEN
        a := least(p_amount, w.principal);
        b := p_amount - a;
    ELSIF rule = 'proportional' THEN
        b := floor(p_amount::numeric * w.bonus_available / (w.principal + w.bonus_available));
        a := p_amount - b;
    ELSE
        b := least(p_amount, w.bonus_available);
        a := p_amount - b;
    END IF;
    INSERT INTO spends (shop_id, spend_id, wallet_seq, amount, from_principal, from_bonus, order_id,
                        created_at)
    VALUES (p_shop, p_spend_id, w.seq, p_amount, a, b, p_order_id, p_now) RETURNING * INTO s;
    -- the bonus comes from what expires first, then the oldest
    left_ := b;
    FOR i IN SELECT bi.topup_seq, bi.k, bi.remaining FROM bonus_installments bi
              WHERE bi.wallet_seq = w.seq AND bi.status = 'released' AND bi.remaining > 0
              ORDER BY bi.expires_at NULLS LAST, bi.due_at, bi.topup_seq, bi.k LOOP
        EXIT WHEN left_ = 0;
        take := least(left_, i.remaining);
        UPDATE bonus_installments SET remaining = remaining - take
         WHERE topup_seq = i.topup_seq AND k = i.k;
        INSERT INTO spend_allocations (spend_seq, topup_seq, k, amount) VALUES (s.seq, i.topup_seq, i.k, take);
        left_ := left_ - take;
    END LOOP;
    IF left_ <> 0 THEN
        RAISE EXCEPTION 'wallet %: released installments hold less than bonus_available', w.seq;
    END IF;
    PERFORM ledger_post(w.seq, 'spend', p_spend_id, p_now, -a, -b, 0,
                        jsonb_build_object('revenue', p_amount));
    SELECT * INTO w FROM wallets WHERE seq = w.seq;
    status := 'created';
    body := json_build_object('spend', spend_json(s), 'wallet', wallet_json(w, p_customer_id, cur, p_now));
END $$;

-- rebuyd verify: ledger rows that break an invariant (none expected):
-- journal rows whose entries do not sum to zero, wallets whose cached
-- balances differ from their entries, released installments whose
-- remaining does not add up to bonus_available.
CREATE FUNCTION ledger_verify(p_shop uuid) RETURNS TABLE (shop_id uuid, what text, detail text)
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
$$;

-- A customer's wallet at p_now without bringing it up to date (segment
-- filters read many wallets): principal, and the bonus available then,
-- released or due, not expired.  No row: no wallet.
CREATE FUNCTION wallet_balances_at(p_customer bigint, p_now timestamptz,
                                   OUT principal bigint, OUT bonus_available bigint)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT w.principal,
           coalesce((SELECT sum(CASE WHEN i.status = 'released' THEN i.remaining ELSE i.amount END)
                       FROM bonus_installments i
                      WHERE i.wallet_seq = w.seq
                        AND (i.status = 'released' OR (i.status = 'pending' AND i.due_at <= p_now))
                        AND (i.expires_at IS NULL OR i.expires_at > p_now)), 0)::bigint
      FROM wallets w WHERE w.customer_seq = p_customer
$$;

-- Bring every wallet of the shop with a release or expiry due by p_now up
-- to date, each under its customer's lock (the minute sweep, and before a
-- report, so that the journal holds every movement due).  Returns how many.
CREATE FUNCTION wallet_sweep(p_shop uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    w record;
    n integer := 0;
BEGIN
    FOR w IN SELECT DISTINCT i.wallet_seq, wa.customer_seq FROM bonus_installments i
               JOIN wallets wa ON wa.seq = i.wallet_seq
              WHERE (p_shop IS NULL OR wa.shop_id = p_shop)
                AND ((i.status = 'pending' AND least(i.due_at, i.expires_at) <= p_now)
                     OR (i.status = 'released' AND i.remaining > 0 AND i.expires_at <= p_now))
              ORDER BY wa.customer_seq LOOP
        PERFORM 1 FROM customers WHERE seq = w.customer_seq FOR NO KEY UPDATE;
        PERFORM wallet_catch_up(w.wallet_seq, p_now);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Prepaid liability of a shop at instant p_at (<= now, after a sweep):
-- the sums of the journal up to then (cash received and bonus granted net
-- of top-up refunds; spent net of spend refunds), and per offer the bonus
-- movements of its top-ups.
CREATE FUNCTION prepaid_liability(p_shop uuid, p_at timestamptz) RETURNS json
LANGUAGE sql STABLE AS $$
    WITH e AS (
        SELECT j.kind, j.ref, e.account, e.amount FROM journal j
          JOIN journal_entries e ON e.journal_seq = j.seq
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
          FROM e),
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
            FROM per), '[]'))
      FROM tot
$$;

-- A refund of part or all of a spend (see balances2.md): principal first,
-- up to what the spend took from principal and earlier refunds did not
-- return; the rest back to the installments it came from, newest first
-- (an installment expired since: breakage; of a top-up refunded since:
-- promotion).  status: created, replayed, no_customer, no_spend, conflict,
-- too_much (body: what is left to refund); body: {refund, wallet}.
CREATE FUNCTION wallet_spend_refund(p_shop uuid, p_customer_id text, p_spend_id text,
                                    p_refund_id text, p_amount bigint, p_now timestamptz,
                                    OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust  bigint := wallet_customer(p_shop, p_customer_id, true);
    s     spends;
    w     wallets;
    f     spend_refunds;
    cur   text;
    pr    bigint;
    left_ bigint;
    tb    bigint := 0;
    tk    bigint := 0;
    tc    bigint := 0;
    a     record;
    take  bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT sh.currency INTO cur FROM shops sh WHERE sh.id = p_shop;
    SELECT sp.* INTO s FROM spends sp JOIN wallets wa ON wa.seq = sp.wallet_seq
     WHERE sp.shop_id = p_shop AND sp.spend_id = p_spend_id AND wa.customer_seq = cust;
    IF NOT FOUND THEN
        status := 'no_spend';
        RETURN;
    END IF;
    SELECT * INTO w FROM wallets WHERE seq = s.wallet_seq FOR UPDATE;
    PERFORM wallet_catch_up(w.seq, p_now);
    PERFORM wallet_id_lock(p_shop, 'refund', p_refund_id);
    SELECT * INTO f FROM spend_refunds WHERE shop_id = p_shop AND refund_id = p_refund_id;
    IF FOUND THEN
        IF f.spend_seq <> s.seq OR f.amount <> p_amount THEN
            status := 'conflict';
            RETURN;
        END IF;
        status := 'replayed';
    ELSIF p_amount > s.amount - s.refunded THEN
        status := 'too_much';
        body := to_json(s.amount - s.refunded);
        RETURN;
    ELSE
        pr := least(p_amount, s.from_principal - coalesce((SELECT sum(x.to_principal)
                                                             FROM spend_refunds x
                                                            WHERE x.spend_seq = s.seq), 0));
        left_ := p_amount - pr;
        FOR a IN SELECT sa.topup_seq, sa.k, sa.amount - sa.refunded AS open,
                        -- spent in full, an installment stays released past its expiry
                        CASE WHEN i.status = 'cancelled' OR t.refunded_at IS NOT NULL THEN 'cancelled'
                             WHEN i.status = 'released' AND (i.expires_at IS NULL OR i.expires_at > p_now)
                             THEN 'released' ELSE 'expired' END AS state
                   FROM spend_allocations sa
                   JOIN bonus_installments i ON i.topup_seq = sa.topup_seq AND i.k = sa.k
                   JOIN topups t ON t.seq = sa.topup_seq
                  WHERE sa.spend_seq = s.seq AND sa.refunded < sa.amount
                  ORDER BY sa.topup_seq DESC, sa.k DESC LOOP
            EXIT WHEN left_ = 0;
            take := least(left_, a.open);
            UPDATE spend_allocations SET refunded = refunded + take
             WHERE spend_seq = s.seq AND topup_seq = a.topup_seq AND k = a.k;
            IF a.state = 'released' THEN
                UPDATE bonus_installments SET remaining = remaining + take
                 WHERE topup_seq = a.topup_seq AND k = a.k;
                tb := tb + take;
            ELSIF a.state = 'cancelled' THEN
                tc := tc + take;
            ELSE
                tk := tk + take;
            END IF;
            left_ := left_ - take;
        END LOOP;
        IF left_ <> 0 THEN
            RAISE EXCEPTION 'spend %: allocations hold less than from_bonus', s.seq;
        END IF;
        PERFORM ledger_post(w.seq, 'refund', p_refund_id, p_now, pr, tb, 0,
                            jsonb_build_object('revenue', -p_amount, 'breakage', tk, 'promotion', tc));
        UPDATE spends SET refunded = refunded + p_amount WHERE seq = s.seq;
        INSERT INTO spend_refunds (shop_id, refund_id, spend_seq, amount, to_principal, to_bonus,
                                   to_breakage, created_at)
        VALUES (p_shop, p_refund_id, s.seq, p_amount, pr, tb, tk + tc, p_now) RETURNING * INTO f;
        status := 'created';
    END IF;
    SELECT * INTO w FROM wallets WHERE seq = w.seq;
    body := json_build_object('refund', json_build_object('refund_id', f.refund_id,
                'spend_id', s.spend_id, 'amount', f.amount, 'to_principal', f.to_principal,
                'to_bonus', f.to_bonus, 'to_breakage', f.to_breakage,
                'created_at', rfc3339(f.created_at)),
            'wallet', wallet_json(w, p_customer_id, cur, p_now));
END $$;

-- A refund of a whole top-up (see balances2.md): the principal still in
-- the wallet, up to what the top-up paid, goes back (cash); its pending
-- installments are cancelled and the unspent part of its released ones is
-- clawed back (promotion).  Once per top-up: again, the same answer.
-- status: created, replayed, no_customer, no_topup; body: {topup, wallet}.
CREATE FUNCTION wallet_topup_refund(p_shop uuid, p_customer_id text, p_topup_id text,
                                    p_now timestamptz, OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust   bigint := wallet_customer(p_shop, p_customer_id, true);
    t      topups;
    w      wallets;
    cur    text;
    u      bigint;
    cancel bigint;
    claw   bigint;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT sh.currency INTO cur FROM shops sh WHERE sh.id = p_shop;
    SELECT tp.* INTO t FROM topups tp JOIN wallets wa ON wa.seq = tp.wallet_seq
     WHERE tp.shop_id = p_shop AND tp.topup_id = p_topup_id AND wa.customer_seq = cust;
    IF NOT FOUND THEN
        status := 'no_topup';
        RETURN;
    END IF;
    SELECT * INTO w FROM wallets WHERE seq = t.wallet_seq FOR UPDATE;
    PERFORM wallet_catch_up(w.seq, p_now);
    SELECT * INTO w FROM wallets WHERE seq = w.seq;
    IF t.refunded_at IS NOT NULL THEN
        status := 'replayed';
    ELSE
        u := least(t.amount, w.principal);
        SELECT coalesce(sum(amount) FILTER (WHERE i.status = 'pending'), 0),
               coalesce(sum(remaining) FILTER (WHERE i.status = 'released'), 0)
          INTO cancel, claw FROM bonus_installments i WHERE i.topup_seq = t.seq;
        PERFORM ledger_post(w.seq, 'topup_refund', p_topup_id, p_now, -u, -claw, -cancel,
                            jsonb_build_object('cash', u, 'promotion', claw + cancel));
        -- a released installment spent in full stays released
        UPDATE bonus_installments bi SET status = 'cancelled', remaining = 0
         WHERE bi.topup_seq = t.seq
           AND (bi.status = 'pending' OR (bi.status = 'released' AND bi.remaining > 0));
        UPDATE topups SET refunded_at = p_now, principal_returned = u, bonus_cancelled = cancel,
               bonus_clawed_back = claw
         WHERE seq = t.seq RETURNING * INTO t;
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
        status := 'created';
    END IF;
    body := json_build_object('topup', topup_json(t), 'wallet', wallet_json(w, p_customer_id, cur, p_now));
END $$;

-- A manual adjustment of the principal by an admin (signed amount, with a
-- reason; the shop's adjustment account takes the other side).  status:
-- created, replayed, conflict, no_customer, insufficient (body: the
-- available amounts); body: {adjustment, wallet}.
CREATE FUNCTION wallet_adjust(p_shop uuid, p_customer_id text, p_adjustment_id text,
                              p_amount bigint, p_reason text, p_now timestamptz,
                              OUT status text, OUT body json)
LANGUAGE plpgsql AS $$
DECLARE
    cust bigint := wallet_customer(p_shop, p_customer_id, true);
    w    wallets;
    x    wallet_adjustments;
    cur  text;
BEGIN
    IF cust IS NULL THEN
        status := 'no_customer';
        RETURN;
    END IF;
    SELECT sh.currency INTO cur FROM shops sh WHERE sh.id = p_shop;
    SELECT * INTO w FROM wallets WHERE customer_seq = cust FOR UPDATE;
    IF FOUND THEN
        PERFORM wallet_catch_up(w.seq, p_now);
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
    END IF;
    PERFORM wallet_id_lock(p_shop, 'adjustment', p_adjustment_id);
    SELECT * INTO x FROM wallet_adjustments WHERE shop_id = p_shop AND adjustment_id = p_adjustment_id;
    IF FOUND THEN
        IF x.wallet_seq IS DISTINCT FROM w.seq OR x.amount <> p_amount OR x.reason <> p_reason THEN
            status := 'conflict';
            RETURN;
        END IF;
        status := 'replayed';
    ELSIF p_amount < 0 AND coalesce(w.principal, 0) + p_amount < 0 THEN
        status := 'insufficient';
        body := json_build_object('principal', coalesce(w.principal, 0),
                                  'bonus_available', coalesce(w.bonus_available, 0),
                                  'available', coalesce(w.principal + w.bonus_available, 0));
        RETURN;
    ELSE
        IF w.seq IS NULL THEN
            INSERT INTO wallets (shop_id, customer_seq, opened_at) VALUES (p_shop, cust, p_now)
            RETURNING * INTO w;
        END IF;
        INSERT INTO wallet_adjustments (shop_id, adjustment_id, wallet_seq, amount, reason, created_at)
        VALUES (p_shop, p_adjustment_id, w.seq, p_amount, p_reason, p_now) RETURNING * INTO x;
        PERFORM ledger_post(w.seq, 'adjustment', p_adjustment_id, p_now, p_amount, 0, 0,
                            jsonb_build_object('adjustment', -p_amount));
        SELECT * INTO w FROM wallets WHERE seq = w.seq;
        status := 'created';
    END IF;
    body := json_build_object('adjustment', json_build_object('adjustment_id', x.adjustment_id,
                'amount', x.amount, 'reason', x.reason, 'created_at', rfc3339(x.created_at)),
            'wallet', wallet_json(w, p_customer_id, cur, p_now));
END $$;
