-- conversions: one row per purchase transaction (its categories from the transaction's
-- items) and one per event a conversion rule names, with the session it came from.
WITH orders AS (
  SELECT *
  FROM (
    SELECT *,
      row_number() OVER (PARTITION BY tr_orderid ORDER BY derived_tstamp, event_id) AS copy
    FROM events_this_run
    WHERE event_name = 'transaction' AND tr_orderid IS NOT NULL
  ) t
  WHERE copy = 1
),
items AS (
  SELECT ti_orderid, @sorted_set(ti_category) AS categories
  FROM events_this_run
  WHERE event_name = 'transaction_item' AND ti_category IS NOT NULL
  GROUP BY ti_orderid
),
found AS (
  SELECT o.event_id, 'transaction' AS conversion_name, o.tr_orderid AS order_id,
    o.domain_sessionid, o.domain_userid, o.user_id, o.derived_tstamp,
    o.tr_total AS value, o.tr_currency AS currency, i.categories
  FROM orders o
  LEFT JOIN items i ON i.ti_orderid = o.tr_orderid
  {{rules}}
),
session_starts AS (
  SELECT domain_sessionid, min(derived_tstamp) AS session_start
  FROM events_this_run
  GROUP BY domain_sessionid
)
SELECT
  c.event_id, c.conversion_name, c.order_id, c.domain_sessionid, c.domain_userid, c.user_id,
  coalesce(m.user_id, c.domain_userid) AS stitched_user_id,
  c.derived_tstamp AS conversion_tstamp, c.value, c.currency, c.categories,
  CAST(s.session_start AS DATE) AS session_date
FROM found c
JOIN session_starts s ON s.domain_sessionid = c.domain_sessionid
LEFT JOIN user_mapping m ON m.domain_userid = c.domain_userid
