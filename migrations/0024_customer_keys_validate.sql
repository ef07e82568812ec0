-- The composite customer keys of 0023, validated for the rows already
-- there, then the single keys they replace dropped (see 0023).
--
-- VALIDATE reads each table once, holding SHARE UPDATE EXCLUSIVE on it and
-- ROW SHARE on customers: reads and writes go on.  The drops come last:
-- each takes ACCESS EXCLUSIVE on its table and on the table it referenced
-- (customers, shops), held from there to this migration's commit, a
-- moment.  A row whose shop is not its customer's shop fails the
-- validation, naming the key; none can exist if every write took the shop
-- from the customer (they all do).

ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fkey;
ALTER TABLE purchase_occasions VALIDATE CONSTRAINT purchase_occasions_customer_fkey;
ALTER TABLE customer_facts VALIDATE CONSTRAINT customer_facts_customer_fkey;
ALTER TABLE customer_category_facts VALIDATE CONSTRAINT customer_category_facts_customer_fkey;

ALTER TABLE orders DROP CONSTRAINT orders_customer_seq_fkey,
    DROP CONSTRAINT orders_shop_id_fkey;
ALTER TABLE purchase_occasions DROP CONSTRAINT purchase_occasions_customer_seq_fkey,
    DROP CONSTRAINT purchase_occasions_shop_id_fkey;
ALTER TABLE customer_facts DROP CONSTRAINT customer_facts_customer_seq_fkey,
    DROP CONSTRAINT customer_facts_shop_id_fkey;
ALTER TABLE customer_category_facts DROP CONSTRAINT customer_category_facts_customer_seq_fkey,
    DROP CONSTRAINT customer_category_facts_shop_id_fkey;
-- the same columns as customers_shop_seq_key: every lookup it served, that one serves
DROP INDEX customers_shop_seq;
