WITH r AS (
    SELECT x ->> 0 AS meta_message_id,
        x ->> 1 AS genesys_message_id,
        x ->> 2 AS conversation_id,
        x ->> 3 AS wa_id,
        x ->> 4 AS direction,
        x ->> 5 AS status,
        x ->> 6 AS message_type,
        x ->> 7 AS media_type,
        x ->> 8 AS media_url,
        x ->> 9 AS media_id,
        x ->> 10 AS media_mime_type,
        x ->> 11 AS media_sha256,
        x ->> 12 AS media_filename,
        x ->> 13 AS media_caption,
        CAST(x ->> 14 AS int) AS error_code,
        x ->> 15 AS error_title,
        x ->> 16 AS error_message,
        x ->> 17 AS error_details,
        x ->> 18 AS biz_opaque_callback_data,
        CAST(x ->> 19 AS timestamptz) AS at, ord
    FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) WITH ORDINALITY AS e(x, ord)
),
ins AS (
    INSERT INTO message_tracking
        (tenant_id, meta_message_id, genesys_message_id, conversation_id, wa_id, direction, status, message_type, media_type, media_url, media_id, media_mime_type, media_sha256, media_filename, media_caption, error_code, error_title, error_message, error_details, biz_opaque_callback_data, queued_at, sent_at, failed_at, delivered_at, read_at, played_at, created_at, updated_at)
    SELECT %(tenant)s, r.meta_message_id, r.genesys_message_id, r.conversation_id, r.wa_id, r.direction, r.status, r.message_type, r.media_type, r.media_url, r.media_id, r.media_mime_type, r.media_sha256, r.media_filename, r.media_caption, r.error_code, r.error_title, r.error_message, r.error_details, r.biz_opaque_callback_data,
        CASE WHEN r.status = 'queued' THEN r.at END, CASE WHEN r.status = 'sent' THEN r.at END, CASE WHEN r.status = 'failed' THEN r.at END, CASE WHEN r.status = 'delivered' THEN r.at END, CASE WHEN r.status = 'read' THEN r.at END, CASE WHEN r.status = 'played' THEN r.at END,
        %(now)s, %(now)s
    FROM r ORDER BY r.ord
    ON CONFLICT (tenant_id, genesys_message_id) DO NOTHING
    RETURNING meta_message_id, genesys_message_id
)
-- The ids only when some input was a duplicate: otherwise every input is new.
SELECT count(*),
    CASE WHEN count(*) < %(n)s THEN array_agg(meta_message_id) END,
    CASE WHEN count(*) < %(n)s THEN array_agg(genesys_message_id) END
FROM ins
