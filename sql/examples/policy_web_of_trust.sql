-- A write policy: a web of trust. Accept events only from the relay's
-- admins and the authors they follow (the `p` tags of their latest kind 3
-- contact list, as stored by the relay); refuse the rest with
-- `restricted:`. The admins are the rows of nostr_policy.admins, filled
-- from -v admins (64-hex pubkeys, comma-separated). Installs
-- nostr_policy.followed_by_admins and names it in nostr.write_policy for
-- this database (superuser; run it again to change the admins).
--
--   psql -d nostr -v admins=HEX[,HEX...] -f sql/examples/policy_web_of_trust.sql
--
-- Each event costs two index probes per admin. When an
-- admin follows someone new, that author may publish from then on; one
-- unfollowed may not, but what was stored stays. As with policy_kinds.sql,
-- sessions opened before keep the old setting.
\if :{?admins}
\else
  \echo 'usage: psql -v admins=HEX[,HEX...] -f policy_web_of_trust.sql'
  \quit
\endif

CREATE SCHEMA IF NOT EXISTS nostr_policy;
CREATE TABLE IF NOT EXISTS nostr_policy.admins (pubkey bytea PRIMARY KEY CHECK (length(pubkey) = 32));
BEGIN;
DELETE FROM nostr_policy.admins;
INSERT INTO nostr_policy.admins
SELECT DISTINCT decode(lower(trim(h)), 'hex') FROM unnest(string_to_array(:'admins', ',')) AS h;
COMMIT;

-- A contact list (replaceable, kind 3) is the one row of its author with
-- d_key ''; whether it names the author is one probe of nostr.event_tags
-- (tag 'p:<hex>', kind, created_at, id), which never reads the list itself
-- (thousands of tags, stored out of line: reading it for every event cost
-- a third to a half of ingest in tests/bench/policy_cost.sh). The LATERAL
-- ... LIMIT 1 subqueries keep that order (admins, their lists, the probe)
-- whatever the statistics say: the plan PL/pgSQL keeps may have been made
-- while nostr.events was nearly empty, and a plan made then walks every
-- contact list.
-- PL/pgSQL, without SECURITY DEFINER, for the reasons policy_kinds.sql gives.
CREATE OR REPLACE FUNCTION nostr_policy.followed_by_admins(event nostr.nostr_event, auth_pubkey text, client_addr inet)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    author text := nostr.pubkey(event);
BEGIN
    IF EXISTS (SELECT 1 FROM nostr_policy.admins a WHERE a.pubkey = decode(author, 'hex'))
       OR EXISTS (SELECT 1 FROM nostr_policy.admins a,
                  LATERAL (SELECT c.id, c.created_at FROM nostr.events c
                           WHERE c.pubkey = a.pubkey AND c.kind = 3 AND c.d_key = '' LIMIT 1) AS list,
                  LATERAL (SELECT 1 FROM nostr.event_tags t
                           WHERE t.tag = 'p:' || author AND t.kind = 3
                             AND t.created_at = list.created_at AND t.id = list.id LIMIT 1) AS follows) THEN
        RETURN NULL;
    END IF;
    RETURN 'restricted: only authors the admins of this relay follow may publish here';
END $$;

ALTER DATABASE :"DBNAME" SET nostr.write_policy = 'nostr_policy.followed_by_admins';
SELECT 'nostr_policy.followed_by_admins trusts ' || count(*) || ' admin(s)' FROM nostr_policy.admins;
