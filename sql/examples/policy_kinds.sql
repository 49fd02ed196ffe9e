-- A write policy: accept only the kinds listed here (a per-kind allow
-- list), refuse the rest with `blocked:`. Installs nostr_policy.kinds_only,
-- fills its list from -v kinds, and names it in nostr.write_policy for this
-- database (superuser; run it again to change the list).
--
--   psql -d nostr -v kinds=0,1,3,5,7 -f sql/examples/policy_kinds.sql
--
-- The setting applies to sessions opened afterwards: restart the gateways,
-- or set it server-wide at once instead (ALTER SYSTEM SET
-- nostr.write_policy = 'nostr_policy.kinds_only'; SELECT pg_reload_conf()).
-- For a list moderators change over NIP-86, nostr.allow_kind does the same
-- without a policy; this shows the shape of a policy function.
\if :{?kinds}
\else
  \echo 'usage: psql -v kinds=KIND[,KIND...] -f policy_kinds.sql'
  \quit
\endif

CREATE SCHEMA IF NOT EXISTS nostr_policy;
CREATE TABLE IF NOT EXISTS nostr_policy.kinds (kind integer PRIMARY KEY);
BEGIN;
DELETE FROM nostr_policy.kinds;
INSERT INTO nostr_policy.kinds
SELECT DISTINCT trim(k)::integer FROM unnest(string_to_array(:'kinds', ',')) AS k;
COMMIT;

-- The documented signature: the event, the sender's authenticated pubkey
-- (hex, NULL if none), its address (NULL if unknown); NULL means accept.
-- PL/pgSQL keeps its plans for the session (a LANGUAGE sql function is
-- planned again at every call, which costs a third of ingest); no
-- SECURITY DEFINER or SET clause, which cost on every call too: it runs as
-- the extension's owner or the superuser inserting, who may read the list.
CREATE OR REPLACE FUNCTION nostr_policy.kinds_only(event nostr.nostr_event, auth_pubkey text, client_addr inet)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM nostr_policy.kinds k WHERE k.kind = nostr.kind(event)) THEN
        RETURN NULL;
    END IF;
    RETURN 'blocked: kind ' || nostr.kind(event) || ' is not accepted by this relay';
END $$;

ALTER DATABASE :"DBNAME" SET nostr.write_policy = 'nostr_policy.kinds_only';
SELECT 'nostr_policy.kinds_only accepts kinds ' || string_agg(kind::text, ',' ORDER BY kind) FROM nostr_policy.kinds;
