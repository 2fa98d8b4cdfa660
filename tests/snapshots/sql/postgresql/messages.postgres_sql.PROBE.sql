INSERT INTO message_tracking
    (tenant_id, meta_message_id, genesys_message_id, direction, status, message_type,
     created_at, updated_at)
SELECT %(tenant)s, x, x, 'outbound', 'queued', 'unknown', %(now)s, %(now)s
FROM unnest(CAST(%(ids)s AS text[])) AS x ORDER BY x
ON CONFLICT DO NOTHING
RETURNING id, meta_message_id
