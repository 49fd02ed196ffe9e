-- Trending hashtags: the `t` tags of the last :hours hours (default 24),
-- ranked by how many different authors used them, then by how often.
-- Counting authors, not events, keeps one loud account from trending alone.
--
--   psql -d nostr -v hours=6 -v top=20 -f sql/examples/trending_tags.sql
--
-- The time window is served by the index on created_at; nostr.tag_values
-- reads the tags of each event in it.
\if :{?hours}
\else
  \set hours 24
\endif
\if :{?top}
\else
  \set top 10
\endif

SELECT lower(tag)             AS tag,
       count(DISTINCT pubkey) AS authors,
       count(*)               AS uses
FROM nostr.events,
     unnest(nostr.tag_values(event, 't')) AS tag
WHERE created_at BETWEEN extract(epoch FROM now())::bigint - :hours * 3600
                     AND extract(epoch FROM now())::bigint
  AND kind IN (1, 1111, 30023)          -- notes, comments, articles
GROUP BY lower(tag)
ORDER BY authors DESC, uses DESC, tag
LIMIT :top;
