-- sessions: one row per domain_sessionid, from its events and its page views: when
-- it started and ended, how engaged it was, where it entered and left, the channel it
-- came from (the entry page view's marketing and referer fields through the channel
-- rules), its device and geo (from the entry page view), and the stitched user id.
WITH totals AS (
  -- ids are the same on every event of a session; min() picks them without a sort
  SELECT domain_sessionid,
    min(app_id) AS app_id,
    min(domain_userid) AS domain_userid,
    min(network_userid) AS network_userid,
    min(domain_sessionidx) AS domain_sessionidx,
    min(derived_tstamp) AS start_tstamp,
    max(derived_tstamp) AS end_tstamp,
    count(*) AS total_events
  FROM events_this_run
  GROUP BY domain_sessionid
),
logins AS (
  -- the last user id the session saw
  SELECT domain_sessionid, user_id
  FROM (
    SELECT domain_sessionid, user_id,
      row_number() OVER (
        PARTITION BY domain_sessionid ORDER BY derived_tstamp DESC, event_id DESC
      ) AS n
    FROM events_this_run
    WHERE user_id IS NOT NULL
  ) u
  WHERE n = 1
),
views AS (
  SELECT domain_sessionid,
    count(*) AS page_views,
    sum(engaged_time_in_s) AS engaged_time_in_s
  FROM page_views_this_run
  GROUP BY domain_sessionid
),
entry AS (
  SELECT * FROM page_views_this_run WHERE page_view_in_session_index = 1
),
leaving AS (
  SELECT * FROM page_views_this_run WHERE page_view_in_session_index = page_views_in_session
)
SELECT
  t.app_id, t.domain_sessionid, t.domain_sessionidx,
  t.start_tstamp, t.end_tstamp,
  l.user_id, t.domain_userid,
  coalesce(m.user_id, t.domain_userid) AS stitched_user_id,
  t.network_userid,
  coalesce(v.page_views, 0) AS page_views,
  coalesce(v.engaged_time_in_s, 0) AS engaged_time_in_s,
  t.total_events,
  coalesce(v.page_views, 0) >= 2 OR coalesce(v.engaged_time_in_s, 0) >= 10 AS is_engaged,
  coalesce(v.page_views, 0) <= 1 AS is_bounce,
  CAST(round(@epoch_seconds(t.end_tstamp) - @epoch_seconds(t.start_tstamp)) AS BIGINT)
    AS absolute_time_in_s,
  en.page_title AS first_page_title, en.page_url AS first_page_url,
  en.page_urlscheme AS first_page_urlscheme, en.page_urlhost AS first_page_urlhost,
  en.page_urlpath AS first_page_urlpath, en.page_urlquery AS first_page_urlquery,
  en.page_urlfragment AS first_page_urlfragment,
  ex.page_title AS last_page_title, ex.page_url AS last_page_url,
  ex.page_urlscheme AS last_page_urlscheme, ex.page_urlhost AS last_page_urlhost,
  ex.page_urlpath AS last_page_urlpath, ex.page_urlquery AS last_page_urlquery,
  ex.page_urlfragment AS last_page_urlfragment,
  en.page_referrer AS referrer, en.refr_urlscheme, en.refr_urlhost, en.refr_urlpath,
  en.refr_urlquery, en.refr_urlfragment, en.refr_medium, en.refr_source, en.refr_term,
  en.mkt_medium, en.mkt_source, en.mkt_term, en.mkt_content, en.mkt_campaign, en.mkt_clickid,
  en.mkt_network,
  {{channel}} AS default_channel_group,
  en.geo_country, en.geo_region, en.geo_region_name, en.geo_city, en.geo_zipcode,
  en.geo_latitude, en.geo_longitude, en.geo_timezone,
  en.user_ipaddress, en.useragent, en.br_family, en.br_version, en.br_lang, en.br_renderengine,
  en.os_family, en.os_timezone, en.device_class, en.dvce_ismobile,
  CAST(t.start_tstamp AS DATE) AS session_date
FROM totals t
LEFT JOIN logins l ON l.domain_sessionid = t.domain_sessionid
LEFT JOIN views v ON v.domain_sessionid = t.domain_sessionid
LEFT JOIN entry en ON en.domain_sessionid = t.domain_sessionid
LEFT JOIN leaving ex ON ex.domain_sessionid = t.domain_sessionid
LEFT JOIN user_mapping m ON m.domain_userid = t.domain_userid
