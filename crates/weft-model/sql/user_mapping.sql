-- user_mapping: each cookie (domain_userid) that has been seen with a user id, and
-- the latest such id: the one its sessions and page views are stitched to.
-- Grouped rather than ranked: the newest sighting of each cookie, then the
-- greatest user id among sightings at that instant.
WITH latest AS (
  SELECT domain_userid, max(derived_tstamp) AS last_seen_tstamp
  FROM user_ids
  GROUP BY domain_userid
)
SELECT u.domain_userid, max(u.user_id) AS user_id, l.last_seen_tstamp
FROM user_ids u
JOIN latest l
  ON l.domain_userid = u.domain_userid AND l.last_seen_tstamp = u.derived_tstamp
GROUP BY u.domain_userid, l.last_seen_tstamp
