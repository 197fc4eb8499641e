-- Each customer's sessions through their cookies: how many, how engaged, when
-- first and last seen, and the channel of the first and the last.
SELECT
  k.customer_id,
  count(*) AS sessions,
  sum(s.page_views) AS page_views,
  sum(s.engaged_time_in_s) AS engaged_time_in_s,
  min(s.start_tstamp) AS first_seen,
  max(s.end_tstamp) AS last_seen,
  first_value(s.default_channel_group ORDER BY s.start_tstamp, s.domain_sessionid) AS first_channel,
  last_value(s.default_channel_group ORDER BY s.start_tstamp, s.domain_sessionid) AS last_channel
FROM derived.sessions s
JOIN cookie_customers k ON k.domain_userid = s.domain_userid
GROUP BY k.customer_id
