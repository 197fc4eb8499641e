-- user_mapping: each cookie (domain_userid) that has been seen with a user id, and
-- the latest such id: the one its sessions and page views are stitched to.
SELECT domain_userid, user_id, last_seen_tstamp
FROM (
  SELECT domain_userid, user_id, derived_tstamp AS last_seen_tstamp,
    row_number() OVER (
      PARTITION BY domain_userid ORDER BY derived_tstamp DESC, user_id DESC
    ) AS n
  FROM user_ids
) u
WHERE n = 1
