-- A real program: the sqlite3 shell on an in-memory database (no disk I/O in the timing):
-- 100,000 generated rows inserted in one transaction, two indexes, joins, grouping,
-- sorting on text, updates, deletes and a VACUUM.  Deterministic data; the last line printed
-- is a checksum that scripts/bench.sh verifies ("ok|66666|...").
PRAGMA cache_size = -65536;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, score INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER, price REAL, note TEXT);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO customer SELECT i, printf('customer-%05d', (i * 7919) % 10007), printf('city-%03d', i % 211), (i * 31) % 1000 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO orders SELECT i, 1 + (i * 2654435761) % 10000, printf('item-%04d-%s', (i * 40503) % 5000, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 20, 6)),
    1 + i % 9, ((i * 7) % 10000) / 100.0, substr(printf('%.*c', 20 + i % 80, 'x'), 1) FROM n;
COMMIT;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item ON orders(item, price);
CREATE TEMP TABLE r AS SELECT c.city, count(*) AS n, sum(o.qty * o.price) AS total
    FROM orders o JOIN customer c ON c.id = o.customer GROUP BY c.city ORDER BY total DESC;
CREATE TEMP TABLE s AS SELECT item, group_concat(id, ',') AS ids FROM (SELECT item, id FROM orders ORDER BY item DESC, note) GROUP BY item;
CREATE TEMP TABLE t AS SELECT name, max(price) AS m FROM customer JOIN orders ON orders.customer = customer.id WHERE item LIKE 'item-1%' GROUP BY name;
CREATE TEMP TABLE w AS SELECT id, customer, sum(qty) OVER (PARTITION BY customer ORDER BY id) AS running,
    rank() OVER (PARTITION BY item ORDER BY price DESC) AS rk FROM orders;
CREATE TEMP TABLE u AS SELECT DISTINCT upper(note) || item AS k FROM orders ORDER BY k;
CREATE TEMP TABLE v AS SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer = c.id AND o.qty > 4) AS big FROM customer c;
UPDATE orders SET note = note || '-updated', qty = qty + 1 WHERE id % 3 = 0;
DELETE FROM orders WHERE id % 3 = 1;
VACUUM;
SELECT 'ok', (SELECT count(*) FROM orders), (SELECT count(*) FROM r), (SELECT count(*) FROM s), (SELECT count(*) FROM t), (SELECT count(*) FROM w), (SELECT count(*) FROM u), (SELECT sum(big) FROM v), (SELECT sum(qty) FROM orders);
