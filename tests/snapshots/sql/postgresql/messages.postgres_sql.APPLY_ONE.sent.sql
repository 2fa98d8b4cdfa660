WITH target AS (
    (SELECT id FROM message_tracking WHERE tenant_id = %(tenant)s AND meta_message_id = %(ext)s)
    UNION ALL
    (SELECT id FROM message_tracking WHERE tenant_id = %(tenant)s AND genesys_message_id = %(ext)s)
    LIMIT 1
),
upd AS (
    UPDATE message_tracking t SET
        status = CASE WHEN t.status IN ('queued') THEN 'sent' ELSE t.status END,
        sent_at = LEAST(t.sent_at, CAST(%(at)s AS timestamptz)),
        updated_at = CASE WHEN t.status IN ('queued') OR (t.sent_at IS NULL OR CAST(%(at)s AS timestamptz) < t.sent_at) THEN %(now)s ELSE t.updated_at END
    FROM target WHERE t.id = target.id
    RETURNING t.*
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, error_code, error_title, error_message, error_details, payload)
    SELECT %(tenant)s, upd.id, 'sent', %(at)s, %(now)s,
        CAST(%(error_code)s AS int), %(error_title)s, %(error_message)s, %(error_details)s, NULL
    FROM upd
    ON CONFLICT (tenant_id, message_id, status) DO UPDATE SET
        occurred_at = LEAST(h.occurred_at, excluded.occurred_at),
        error_code = CASE WHEN excluded.occurred_at < h.occurred_at THEN excluded.error_code ELSE h.error_code END,
error_title = CASE WHEN excluded.occurred_at < h.occurred_at THEN excluded.error_title ELSE h.error_title END,
error_message = CASE WHEN excluded.occurred_at < h.occurred_at THEN excluded.error_message ELSE h.error_message END,
error_details = CASE WHEN excluded.occurred_at < h.occurred_at THEN excluded.error_details ELSE h.error_details END,
        payload = NULLIF(CASE WHEN excluded.occurred_at < h.occurred_at THEN COALESCE(h.payload, '{}'::jsonb) || COALESCE(excluded.payload, '{}'::jsonb) ELSE COALESCE(excluded.payload, '{}'::jsonb) || COALESCE(h.payload, '{}'::jsonb) END,
                         '{}'::jsonb)
    WHERE excluded.occurred_at < h.occurred_at OR NOT (COALESCE(h.payload, '{}'::jsonb) @> COALESCE(excluded.payload, '{}'::jsonb))
)
SELECT id, tenant_id, meta_message_id, genesys_message_id, conversation_id, wa_id, direction, status, message_type, media_type, media_url, media_id, media_mime_type, media_sha256, media_filename, media_caption, queued_at, sent_at, failed_at, delivered_at, read_at, played_at, error_code, error_title, error_message, error_details, pricing, conversation_info, biz_opaque_callback_data, created_at, updated_at FROM upd
