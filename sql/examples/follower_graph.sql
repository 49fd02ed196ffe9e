-- Who is within :depth follows (default 2) of the pubkey :root, from the
-- contact lists (kind 3, NIP-02) the relay holds: a recursive CTE over the
-- `p` tags. Only the newest contact list of each author is stored (kind 3
-- is replaceable), so this is the graph as it stands now.
--
--   psql -d nostr -v root=<64 hex chars> -v depth=3 -f sql/examples/follower_graph.sql
--
-- distance: the fewest follows from :root; followed_by: how many people one
-- step closer to :root follow them (a rough measure of trust).
\if :{?root}
\else
  \echo 'usage: psql -v root=<hex pubkey> [-v depth=N] -f follower_graph.sql'
  \quit
\endif
\if :{?depth}
\else
  \set depth 2
\endif

WITH RECURSIVE
follows (follower, followed) AS (
    SELECT DISTINCT e.pubkey, decode(p, 'hex')
    FROM nostr.events e,
         unnest(nostr.tag_values(e.event, 'p')) AS p
    WHERE e.kind = 3
      AND p ~ '^[0-9a-f]{64}$'          -- skip malformed entries
),
reach (pubkey, distance) AS (
    SELECT decode(:'root', 'hex'), 0
  UNION                                  -- UNION, not UNION ALL: each (pubkey, distance) once
    SELECT f.followed, r.distance + 1
    FROM reach r
    JOIN follows f ON f.follower = r.pubkey
    WHERE r.distance < :depth
),
nearest AS (
    SELECT pubkey, min(distance) AS distance FROM reach GROUP BY pubkey
)
SELECT encode(n.pubkey, 'hex') AS pubkey,
       n.distance,
       (SELECT count(*)
          FROM follows f
          JOIN nearest closer ON closer.pubkey = f.follower AND closer.distance = n.distance - 1
         WHERE f.followed = n.pubkey) AS followed_by
FROM nearest n
WHERE n.distance > 0
ORDER BY n.distance, followed_by DESC, pubkey;
