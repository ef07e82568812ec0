-- 0016: mends to tier evaluation (issue 6).
--   * An order locks the customer's stored tier, so a review or grace end
--     working on the same customer finishes first and the order sees its
--     result (it could lose an upgrade when both ran at once).
--   * A grace period that ended before the order (the minute job had not
--     run yet) ends first, at its own instant: the customer goes down then
--     (history cause review) and the order's upgrade follows, as if the job
--     had been on time.

CREATE OR REPLACE FUNCTION tier_evaluate(p_customer bigint, p_cause text, p_order text) RETURNS void
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
    -- locked: a review or grace end at work on this customer finishes first
    SELECT * INTO ct FROM customer_tiers WHERE customer_seq = p_customer FOR UPDATE;
    -- a grace period that ended before now (the minute job has not run
    -- yet) ends first, at its own instant, as tier_grace_ends would
    IF ct.grace_until <= v_now THEN
        held := tier_rank(v_shop, ct.tier);
        q := tier_qualified_rank(v_shop, p_customer, ct.grace_until);
        IF ct.floor_until > ct.grace_until THEN
            fl := tier_rank(v_shop, ct.floor_tier);
        END IF;
        IF greatest(q, fl) >= held THEN
            UPDATE customer_tiers SET grace_until = NULL WHERE customer_seq = p_customer;
        ELSE
            PERFORM tier_set(v_shop, p_customer, held, greatest(q, fl, v_entry), ct.grace_until,
                             'review', NULL, NULL);
        END IF;
        fl := 0;
        SELECT * INTO ct FROM customer_tiers WHERE customer_seq = p_customer;
    END IF;
    q := tier_qualified_rank(v_shop, p_customer, v_now);
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
