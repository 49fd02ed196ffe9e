//! Every object of the extension explains itself in psql (`\df+ nostr.*`,
//! `\dT+ nostr.*`, `\d+ nostr.events`, `\dconfig+ nostr.*`): a comment on
//! each function, type, table, view and sequence of schema `nostr` and each
//! column of `nostr.events`, and a description for each `nostr.*` setting
//! (`sql/comments.sql`, and the comments beside the objects in `sql/`).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::spi::Error;

    #[pg_test]
    fn every_object_has_a_comment() -> Result<(), Error> {
        let missing = Spi::get_one::<Vec<String>>(
            "SELECT coalesce(array_agg(what ORDER BY what), '{}') FROM (
                 SELECT 'function ' || p.oid::regprocedure::text AS what FROM pg_proc p
                 WHERE p.pronamespace = 'nostr'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
                 UNION ALL
                 SELECT 'type ' || t.oid::regtype::text FROM pg_type t
                 WHERE t.typnamespace = 'nostr'::regnamespace AND t.typrelid = 0 AND t.typelem = 0
                   AND obj_description(t.oid, 'pg_type') IS NULL
                 UNION ALL
                 SELECT 'relation ' || c.oid::regclass::text FROM pg_class c
                 WHERE c.relnamespace = 'nostr'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f')
                   AND obj_description(c.oid, 'pg_class') IS NULL
                 UNION ALL
                 SELECT 'column nostr.events.' || a.attname FROM pg_attribute a
                 WHERE a.attrelid = 'nostr.events'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                   AND col_description(a.attrelid, a.attnum) IS NULL
                 UNION ALL
                 SELECT 'setting ' || name FROM pg_settings
                 WHERE name LIKE 'nostr.%' AND coalesce(short_desc, '') = ''
             ) AS m",
        )?
        .unwrap_or_default();
        assert!(missing.is_empty(), "no comment: {missing:?}");
        // It would notice: the settings are there to be looked at.
        let settings = Spi::get_one::<i64>("SELECT count(*) FROM pg_settings WHERE name LIKE 'nostr.%'")?;
        assert!(settings.unwrap_or(0) >= 14, "{settings:?}");
        Ok(())
    }
}
