-- A segment's list and export read, per member, four facts: order count,
-- first and last order, total spent.  Walked through (shop_id,
-- customer_seq), each member's facts row sits on its own heap page (a
-- facts row moves on every order), so an export of 1M members read 1M
-- pages: 2.3 s of its 3.4 s.  With the four columns in the index the walk
-- is an index-only scan (0.14 s; pages changed since the last vacuum are
-- still read from the heap).  The same key, so it replaces the old index.
-- Facts rows are never updated in place (their indexed columns change),
-- so the wider entries cost no HOT update.
CREATE INDEX customer_facts_list ON customer_facts (shop_id, customer_seq)
    INCLUDE (order_count, first_order_at, last_order_at, total_spent);
DROP INDEX customer_facts_shop_seq;
