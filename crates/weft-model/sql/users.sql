-- users: one row per cookie (domain_userid), rolled up from its sessions: first and
-- last seen, totals, the first page, first- and last-touch channel, the stitched id.
-- The first session is the least session id of those that started first, the last
-- the greatest of those that started last: grouped rather than ranked, which would
-- take a cookie at a time over whole sessions.
WITH totals AS (
  SELECT domain_userid,
    min(start_tstamp) AS start_tstamp,
    max(start_tstamp) AS last_start_tstamp,
    max(end_tstamp) AS end_tstamp,
    count(*) AS sessions,
    sum(page_views) AS page_views,
    sum(engaged_time_in_s) AS engaged_time_in_s,
    sum(total_events) AS total_events
  FROM user_sessions
  WHERE domain_userid IS NOT NULL
  GROUP BY domain_userid
),
ends AS (
  SELECT t.domain_userid,
    min(CASE WHEN s.start_tstamp = t.start_tstamp THEN s.domain_sessionid END) AS first_session,
    max(CASE WHEN s.start_tstamp = t.last_start_tstamp THEN s.domain_sessionid END)
      AS last_session
  FROM totals t
  JOIN user_sessions s ON s.domain_userid = t.domain_userid
  WHERE s.start_tstamp = t.start_tstamp OR s.start_tstamp = t.last_start_tstamp
  GROUP BY t.domain_userid
)
SELECT
  m.user_id, t.domain_userid, f.stitched_user_id, l.network_userid,
  t.start_tstamp, t.end_tstamp, t.sessions, t.page_views, t.engaged_time_in_s,
  t.total_events,
  f.first_page_title, f.first_page_url, f.first_page_urlscheme, f.first_page_urlhost,
  f.first_page_urlpath, f.first_page_urlquery, f.first_page_urlfragment,
  l.last_page_title, l.last_page_url, l.last_page_urlscheme, l.last_page_urlhost,
  l.last_page_urlpath, l.last_page_urlquery, l.last_page_urlfragment,
  f.referrer, f.refr_urlscheme, f.refr_urlhost, f.refr_urlpath, f.refr_urlquery,
  f.refr_urlfragment, f.refr_medium, f.refr_source, f.refr_term,
  f.mkt_medium, f.mkt_source, f.mkt_term, f.mkt_content, f.mkt_campaign, f.mkt_clickid,
  f.mkt_network,
  f.default_channel_group AS first_channel,
  l.default_channel_group AS last_channel,
  f.geo_country AS first_geo_country, f.geo_city AS first_geo_city,
  l.geo_country AS last_geo_country, l.geo_city AS last_geo_city,
  f.br_lang AS first_br_lang, l.br_lang AS last_br_lang,
  l.device_class AS last_device_class
FROM totals t
JOIN ends e ON e.domain_userid = t.domain_userid
JOIN user_sessions f
  ON f.domain_userid = t.domain_userid AND f.domain_sessionid = e.first_session
JOIN user_sessions l
  ON l.domain_userid = t.domain_userid AND l.domain_sessionid = e.last_session
LEFT JOIN user_mapping m ON m.domain_userid = t.domain_userid
