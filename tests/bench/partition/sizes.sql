-- Table (heap + TOAST) and index sizes of both layouts, in MB, partitions summed.
SELECT n.nspname AS layout,
       coalesce(p.relname, c.relname) AS "table",
       count(*) AS relations,
       round(sum(pg_table_size(c.oid)) / 1048576.0) AS table_mb,
       round(sum(pg_indexes_size(c.oid)) / 1048576.0) AS indexes_mb,
       sum(c.reltuples)::bigint AS rows_estimate
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
WHERE n.nspname IN ('part_flat', 'part_time') AND c.relkind = 'r'
GROUP BY 1, 2 ORDER BY 1, 2;
