-- page_views: one row per page view, its page pings rolled up into engaged time
-- and scroll depth, as Snowplow's web model computes them: the page view's event
-- with what page_view_facts worked out for it, joined once. The page view events
-- (page_view_events) are the only rows whose page, referer, marketing, device and
-- geo columns the model reads.
WITH firsts AS (
  SELECT f.*, e.app_id, e.user_id, e.network_userid, e.domain_sessionidx,
    e.dvce_created_tstamp, e.collector_tstamp, e.derived_tstamp,
    e.page_title, e.page_url, e.page_urlscheme, e.page_urlhost, e.page_urlpath,
    e.page_urlquery, e.page_urlfragment,
    e.mkt_medium, e.mkt_source, e.mkt_term, e.mkt_content, e.mkt_campaign, e.mkt_clickid,
    e.mkt_network,
    e.page_referrer, e.refr_urlscheme, e.refr_urlhost, e.refr_urlpath, e.refr_urlquery,
    e.refr_urlfragment, e.refr_medium, e.refr_source, e.refr_term,
    e.geo_country, e.geo_region, e.geo_region_name, e.geo_city, e.geo_zipcode,
    e.geo_latitude, e.geo_longitude, e.geo_timezone,
    e.user_ipaddress, e.useragent, e.br_family, e.br_version, e.br_lang, e.br_viewwidth,
    e.br_viewheight, e.br_colordepth, e.br_renderengine, e.os_family, e.os_timezone,
    e.dvce_type, e.dvce_ismobile, e.doc_width, e.doc_height
  FROM page_view_facts f
  JOIN page_view_events e
    ON e.domain_sessionid = f.domain_sessionid AND e.page_view_id = f.page_view_id
    AND e.event_id = f.event_id AND e.derived_tstamp = f.start_tstamp
),
j AS (
  SELECT * FROM (
    SELECT *, CAST(1 AS BIGINT) AS copy FROM firsts WHERE NOT alike
    UNION ALL
    -- copies with one event id sent at one instant (rare): the one collected
    -- first, any one of them where that agrees too
    SELECT *, CAST(row_number() OVER (
      PARTITION BY domain_sessionid, page_view_id
      ORDER BY collector_tstamp, dvce_created_tstamp
    ) AS BIGINT) AS copy
    FROM firsts WHERE alike
  ) v
  WHERE copy = 1
)
SELECT
  j.page_view_id, j.event_id, j.app_id, j.user_id, j.domain_userid,
  j.stitched_user_id,
  j.network_userid, j.domain_sessionid, j.domain_sessionidx,
  j.page_view_in_session_index, j.page_views_in_session,
  j.dvce_created_tstamp, j.collector_tstamp, j.derived_tstamp, j.start_tstamp, j.end_tstamp,
  j.engaged_time_in_s,
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
  j.session_date
FROM j
