-- features: one row per customer as of the cut-off {{cutoff}}. The tables seen
-- here hold only what was known before it (events, sessions and page views that
-- started before it, conversions before it), so use a session's or a page view's
-- start-time attributes, not its totals, which may run past the cut-off.
-- The counts per category and the flags of the `ml` config fill in the extra blanks.
WITH activity AS (
  SELECT k.customer_id,
    count(*) FILTER (WHERE e.event_name = 'page_view') AS page_views,
    count(*) FILTER (WHERE e.event_name = 'page_view'
      AND e.derived_tstamp >= {{cutoff}} - INTERVAL '7 days') AS page_views_7d,
    count(*) FILTER (WHERE e.event_name = 'page_ping') * {{heartbeat}} AS engaged_time_s,
    count(*) FILTER (WHERE e.event_name = 'page_ping'
      AND e.derived_tstamp >= {{cutoff}} - INTERVAL '7 days') * {{heartbeat}} AS engaged_time_s_7d,
    count(*) FILTER (WHERE e.se_category = 'search' OR e.event_name = 'site_search') AS searches,
    avg(CASE WHEN e.event_name = 'page_ping' AND e.doc_height > 0
      THEN least(1.0, (coalesce(e.pp_yoffset_max, 0) + coalesce(e.br_viewheight, 0))
        / CAST(e.doc_height AS DOUBLE)) END) AS scroll_depth,
    count(DISTINCT e.domain_userid) AS cookies,
    count(DISTINCT CAST(e.derived_tstamp AS DATE)) AS days_active
    {{extra_aggregates}}
  FROM events e
  JOIN cookie_customers k ON k.domain_userid = e.domain_userid
  GROUP BY k.customer_id
),
visits AS (
  SELECT k.customer_id,
    count(*) AS sessions,
    count(*) FILTER (WHERE s.start_tstamp >= {{cutoff}} - INTERVAL '7 days') AS sessions_7d,
    count(*) FILTER (WHERE s.start_tstamp >= {{cutoff}} - INTERVAL '30 days') AS sessions_30d,
    (date_part('epoch', {{cutoff}}) - date_part('epoch', max(s.start_tstamp))) / 86400.0
      AS days_since_last_session,
    (date_part('epoch', {{cutoff}}) - date_part('epoch', min(s.start_tstamp))) / 86400.0
      AS days_since_first_seen,
    first_value(s.default_channel_group ORDER BY s.start_tstamp, s.domain_sessionid)
      AS first_channel,
    last_value(s.default_channel_group ORDER BY s.start_tstamp, s.domain_sessionid)
      AS last_channel,
    last_value(s.device_class ORDER BY s.start_tstamp, s.domain_sessionid) AS device_class,
    last_value(s.geo_country ORDER BY s.start_tstamp, s.domain_sessionid) AS country,
    count(*) FILTER (WHERE s.default_channel_group = 'Email') AS email_sessions,
    count(*) FILTER (WHERE s.default_channel_group IN ('Paid Search', 'Paid Social'))
      AS paid_sessions,
    count(*) > 1 AS returning_visitor
  FROM sessions s
  JOIN cookie_customers k ON k.domain_userid = s.domain_userid
  GROUP BY k.customer_id
),
purchases AS (
  SELECT k.customer_id,
    count(*) AS past_conversions,
    sum(coalesce(c.value, 0)) AS past_revenue,
    (date_part('epoch', {{cutoff}}) - date_part('epoch', max(c.conversion_tstamp))) / 86400.0
      AS days_since_last_conversion
  FROM conversions c
  JOIN cookie_customers k ON k.domain_userid = c.domain_userid
  GROUP BY k.customer_id
)
SELECT
  v.customer_id,
  v.sessions, v.sessions_7d, v.sessions_30d,
  v.days_since_last_session, v.days_since_first_seen,
  v.first_channel, v.last_channel, v.device_class, v.country, v.returning_visitor,
  coalesce(a.page_views, 0) AS page_views,
  coalesce(a.page_views_7d, 0) AS page_views_7d,
  coalesce(a.engaged_time_s, 0) AS engaged_time_s,
  coalesce(a.engaged_time_s_7d, 0) AS engaged_time_s_7d,
  coalesce(a.engaged_time_s, 0) / greatest(coalesce(a.page_views, 0), 1)
    AS engaged_time_s_per_page_view,
  coalesce(a.searches, 0) AS searches,
  a.scroll_depth,
  coalesce(a.cookies, 0) AS cookies,
  coalesce(a.days_active, 0) AS days_active,
  v.email_sessions, v.paid_sessions,
  coalesce(p.past_conversions, 0) AS past_conversions,
  coalesce(p.past_revenue, 0) AS past_revenue,
  p.days_since_last_conversion
  {{extra_columns}}
FROM visits v
LEFT JOIN activity a ON a.customer_id = v.customer_id
LEFT JOIN purchases p ON p.customer_id = v.customer_id
