-- page_views: one row per page view, its page pings rolled up into engaged time
-- (heartbeat × (distinct heartbeat buckets − 1) + minimum visit length, 0 without
-- pings) and scroll depth, as Snowplow's web model computes them.
WITH views AS (
  SELECT *,
    row_number() OVER (
      PARTITION BY domain_sessionid, page_view_id ORDER BY derived_tstamp, event_id
    ) AS copy
  FROM events_this_run
  WHERE event_name = 'page_view' AND page_view_id IS NOT NULL
),
heartbeats AS (
  -- the distinct heartbeat buckets pings fell in; grouped twice rather than
  -- count(DISTINCT …), which would keep a set per page view
  SELECT domain_sessionid, page_view_id, count(bucket) AS heartbeats
  FROM (
    SELECT DISTINCT domain_sessionid, page_view_id,
      floor(@epoch_seconds(dvce_created_tstamp) / {{heartbeat}}) AS bucket
    FROM events_this_run
    WHERE event_name = 'page_ping' AND page_view_id IS NOT NULL
  ) b
  GROUP BY domain_sessionid, page_view_id
),
activity AS (
  -- one pass over the view and its pings: last ping, and the offsets
  -- scrolled, clipped to the document (rows that know its size)
  SELECT domain_sessionid, page_view_id,
    max(CASE WHEN event_name = 'page_ping' THEN derived_tstamp END) AS last_ping_tstamp,
    max(CASE WHEN sized THEN doc_width END) AS doc_width,
    max(CASE WHEN sized THEN doc_height END) AS doc_height,
    max(CASE WHEN sized THEN br_viewwidth END) AS br_viewwidth,
    max(CASE WHEN sized THEN br_viewheight END) AS br_viewheight,
    least(greatest(max(CASE WHEN sized THEN coalesce(pp_xoffset_max, 0) END), 0),
      max(CASE WHEN sized THEN doc_width END)) AS hmax,
    least(greatest(max(CASE WHEN sized THEN coalesce(pp_yoffset_max, 0) END), 0),
      max(CASE WHEN sized THEN doc_height END)) AS vmax
  FROM (
    SELECT *, doc_width > 0 AND doc_height > 0 AS sized
    FROM events_this_run
    WHERE event_name IN ('page_view', 'page_ping') AND page_view_id IS NOT NULL
  ) e
  GROUP BY domain_sessionid, page_view_id
),
session_starts AS (
  SELECT domain_sessionid, min(derived_tstamp) AS session_start
  FROM events_this_run
  GROUP BY domain_sessionid
),
joined AS (
  SELECT v.*,
    v.derived_tstamp AS start_tstamp,
    coalesce(a.last_ping_tstamp, v.derived_tstamp) AS end_tstamp,
    CASE WHEN coalesce(h.heartbeats, 0) = 0 THEN 0
      ELSE {{heartbeat}} * (h.heartbeats - 1) + {{min_visit_length}} END AS engaged_time_in_s,
    a.doc_width AS scroll_doc_width, a.doc_height AS scroll_doc_height,
    a.hmax, a.vmax,
    a.br_viewwidth AS scroll_viewwidth, a.br_viewheight AS scroll_viewheight
  FROM views v
  JOIN activity a
    ON a.domain_sessionid = v.domain_sessionid AND a.page_view_id = v.page_view_id
  LEFT JOIN heartbeats h
    ON h.domain_sessionid = v.domain_sessionid AND h.page_view_id = v.page_view_id
  WHERE v.copy = 1
)
SELECT
  j.page_view_id, j.event_id, j.app_id, j.user_id, j.domain_userid,
  coalesce(m.user_id, j.domain_userid) AS stitched_user_id,
  j.network_userid, j.domain_sessionid, j.domain_sessionidx,
  CAST(row_number() OVER (
    PARTITION BY j.domain_sessionid ORDER BY j.start_tstamp, j.page_view_id
  ) AS BIGINT) AS page_view_in_session_index,
  count(*) OVER (PARTITION BY j.domain_sessionid) AS page_views_in_session,
  j.dvce_created_tstamp, j.collector_tstamp, j.derived_tstamp, j.start_tstamp, j.end_tstamp,
  CAST(j.engaged_time_in_s AS BIGINT) AS engaged_time_in_s,
  CAST(round(@epoch_seconds(j.end_tstamp) - @epoch_seconds(j.start_tstamp)) AS BIGINT)
    AS absolute_time_in_s,
  j.hmax AS horizontal_pixels_scrolled,
  j.vmax AS vertical_pixels_scrolled,
  CAST(round(100 * least(j.hmax + j.scroll_viewwidth, j.scroll_doc_width)
    / CAST(j.scroll_doc_width AS DOUBLE)) AS BIGINT) AS horizontal_percentage_scrolled,
  CAST(round(100 * least(j.vmax + j.scroll_viewheight, j.scroll_doc_height)
    / CAST(j.scroll_doc_height AS DOUBLE)) AS BIGINT) AS vertical_percentage_scrolled,
  j.doc_width, j.doc_height,
  j.page_title, j.page_url, j.page_urlscheme, j.page_urlhost, j.page_urlpath, j.page_urlquery,
  j.page_urlfragment,
  j.mkt_medium, j.mkt_source, j.mkt_term, j.mkt_content, j.mkt_campaign, j.mkt_clickid,
  j.mkt_network,
  j.page_referrer, j.refr_urlscheme, j.refr_urlhost, j.refr_urlpath, j.refr_urlquery,
  j.refr_urlfragment, j.refr_medium, j.refr_source, j.refr_term,
  j.geo_country, j.geo_region, j.geo_region_name, j.geo_city, j.geo_zipcode, j.geo_latitude,
  j.geo_longitude, j.geo_timezone,
  j.user_ipaddress, j.useragent, j.br_family, j.br_version, j.br_lang, j.br_viewwidth,
  j.br_viewheight, j.br_colordepth, j.br_renderengine, j.os_family, j.os_timezone,
  j.dvce_type AS device_class, j.dvce_ismobile,
  CAST(st.session_start AS DATE) AS session_date
FROM joined j
JOIN session_starts st ON st.domain_sessionid = j.domain_sessionid
LEFT JOIN user_mapping m ON m.domain_userid = j.domain_userid
