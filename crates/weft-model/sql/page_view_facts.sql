-- page_view_facts: one narrow row per page view, what page_views adds to the page
-- view's own event: which copy of it counts (a tracker may send one more than once:
-- the first sent, the least event id at that instant), engaged time from its pings
-- (heartbeat × (distinct heartbeat buckets − 1) + minimum visit length, 0 without
-- pings), scroll depth, its place in the session and the stitched user id. Worked
-- out on these few columns, so page_views joins the whole events only once.
WITH first_sent AS (
  SELECT domain_sessionid, page_view_id, min(derived_tstamp) AS start_tstamp
  FROM events_this_run
  WHERE event_name = 'page_view' AND page_view_id IS NOT NULL
  GROUP BY domain_sessionid, page_view_id
),
copies AS (
  -- the copy that counts: the least event id of those sent first; grouped
  -- rather than ranked, which would take a page view at a time (the cookie is
  -- the same on every event of a session: min() picks it)
  SELECT f.domain_sessionid, f.page_view_id, f.start_tstamp,
    min(e.event_id) AS event_id, count(*) > 1 AS alike,
    min(e.domain_userid) AS domain_userid
  FROM first_sent f
  JOIN events_this_run e
    ON e.domain_sessionid = f.domain_sessionid AND e.page_view_id = f.page_view_id
    AND e.derived_tstamp = f.start_tstamp
  WHERE e.event_name = 'page_view'
  GROUP BY f.domain_sessionid, f.page_view_id, f.start_tstamp
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
    SELECT event_name, domain_sessionid, page_view_id, derived_tstamp,
      doc_width, doc_height, br_viewwidth, br_viewheight, pp_xoffset_max, pp_yoffset_max,
      doc_width > 0 AND doc_height > 0 AS sized
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
session_views AS (
  -- grouped rather than counted over a window, which would take a session at a time
  SELECT domain_sessionid, count(*) AS page_views_in_session
  FROM first_sent
  GROUP BY domain_sessionid
)
SELECT
  c.domain_sessionid, c.page_view_id, c.event_id,
  -- more than one copy sent first: page_views keeps one of those with that event id
  c.alike,
  c.domain_userid, coalesce(m.user_id, c.domain_userid) AS stitched_user_id,
  CAST(row_number() OVER (
    PARTITION BY c.domain_sessionid ORDER BY c.start_tstamp, c.page_view_id
  ) AS BIGINT) AS page_view_in_session_index,
  sv.page_views_in_session,
  c.start_tstamp,
  coalesce(a.last_ping_tstamp, c.start_tstamp) AS end_tstamp,
  CAST(CASE WHEN coalesce(h.heartbeats, 0) = 0 THEN 0
    ELSE {{heartbeat}} * (h.heartbeats - 1) + {{min_visit_length}} END AS BIGINT)
    AS engaged_time_in_s,
  a.hmax, a.vmax, a.doc_width AS scroll_doc_width, a.doc_height AS scroll_doc_height,
  a.br_viewwidth AS scroll_viewwidth, a.br_viewheight AS scroll_viewheight,
  CAST(st.session_start AS DATE) AS session_date
FROM copies c
JOIN activity a
  ON a.domain_sessionid = c.domain_sessionid AND a.page_view_id = c.page_view_id
LEFT JOIN heartbeats h
  ON h.domain_sessionid = c.domain_sessionid AND h.page_view_id = c.page_view_id
JOIN session_starts st ON st.domain_sessionid = c.domain_sessionid
JOIN session_views sv ON sv.domain_sessionid = c.domain_sessionid
LEFT JOIN user_mapping m ON m.domain_userid = c.domain_userid
