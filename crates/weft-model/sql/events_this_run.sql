-- events_this_run: every event of the sessions this run models (all sessions on a
-- full build), bots left out, each with the page view it belongs to: the id of its
-- web_page entity, or its own event id for a page view sent without one.
SELECT
  event_id, app_id, event_vendor, event_name,
  user_id, domain_userid, network_userid, domain_sessionid, domain_sessionidx,
  dvce_created_tstamp, collector_tstamp, derived_tstamp,
  coalesce(
    {{web_page_id}},
    CASE WHEN event_name = 'page_view' THEN event_id END
  ) AS page_view_id,
  page_title, page_url, page_urlscheme, page_urlhost, page_urlpath, page_urlquery, page_urlfragment,
  page_referrer, refr_urlscheme, refr_urlhost, refr_urlpath, refr_urlquery, refr_urlfragment,
  refr_medium, refr_source, refr_term,
  mkt_medium, mkt_source, mkt_term, mkt_content, mkt_campaign, mkt_clickid, mkt_network,
  geo_country, geo_region, geo_region_name, geo_city, geo_zipcode, geo_latitude, geo_longitude,
  geo_timezone, user_ipaddress, useragent,
  br_family, br_version, br_lang, br_viewwidth, br_viewheight, br_colordepth, br_renderengine,
  os_family, os_timezone, dvce_type, dvce_ismobile, doc_width, doc_height,
  pp_xoffset_max, pp_yoffset_max,
  tr_orderid, tr_total, tr_currency, ti_orderid, ti_category,
  load_tstamp, event_date
  {{rule_columns}}
FROM atomic.events
WHERE domain_sessionid IS NOT NULL
  AND derived_tstamp IS NOT NULL
  {{bots}}
