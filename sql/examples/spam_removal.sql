-- Remove a spammer: every event of the pubkey :spammer, and the reactions
-- and reposts (kinds 6, 7, 16) others made to those events, in one
-- transaction. Preview first with -v dry_run=1.
--
--   psql -d nostr -v spammer=<64 hex chars> -v dry_run=1 -f sql/examples/spam_removal.sql
--   psql -d nostr -v spammer=<64 hex chars> -f sql/examples/spam_removal.sql
--
-- Deleting rows is final and leaves no deletion record: the author could
-- publish the same events again. A NIP-09 deletion the author signed, or a
-- NIP-62 vanish request, is what keeps events out for good.
\if :{?spammer}
\else
  \echo 'usage: psql -v spammer=<hex pubkey> [-v dry_run=1] -f spam_removal.sql'
  \quit
\endif

-- What would go, by kind.
SELECT kind, count(*) AS events
FROM nostr.events
WHERE pubkey = decode(:'spammer', 'hex')
GROUP BY kind
ORDER BY kind;

\if :{?dry_run}
  \echo 'dry run: nothing deleted'
  \quit
\endif

-- The reactions point at the spam by `e` tag; nostr.events.tags holds them
-- as 'e:<id>' index keys, so the GIN index finds them.
WITH spam AS (
    DELETE FROM nostr.events
    WHERE pubkey = decode(:'spammer', 'hex')
    RETURNING id
), reactions AS (
    DELETE FROM nostr.events
    WHERE kind IN (6, 7, 16)
      AND pubkey <> decode(:'spammer', 'hex')
      AND tags && ARRAY(SELECT 'e:' || encode(id, 'hex') FROM spam)
    RETURNING id
)
SELECT (SELECT count(*) FROM spam)      AS spam_removed,
       (SELECT count(*) FROM reactions) AS reactions_removed;
