WITH ev AS (
    DELETE FROM pending_status_events
    WHERE tenant_id = %(tenant)s AND external_id = ANY(string_to_array(%(ids)s, ' '))
    RETURNING external_id AS ext, status, occurred_at AS at, error_code, error_title, error_message, error_details, payload,
        id AS ord
),
hit AS (
    SELECT ev.*, (CASE ev.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) AS rank, m.id AS message_id
    FROM ev CROSS JOIN LATERAL (
        -- Two probes, each an equality on a whole unique key (the WhatsApp id first), rather
        -- than an OR the planner may answer by scanning the tenant's rows.
        (SELECT t.id FROM message_tracking t
         WHERE t.tenant_id = %(tenant)s AND t.meta_message_id = ev.ext)
        UNION ALL
        (SELECT t.id FROM message_tracking t
         WHERE t.tenant_id = %(tenant)s AND t.genesys_message_id = ev.ext)
        LIMIT 1
    ) m
),
firsts AS (
    SELECT DISTINCT ON (message_id, status) message_id, status, rank, at, error_code, error_title, error_message, error_details
    FROM hit ORDER BY message_id, status, at, ord
),
-- The record keeps each payload key of the earliest event (time, then rank) carrying it.
kept AS (
    SELECT message_id, jsonb_object_agg(k, v) AS kept FROM (
        SELECT DISTINCT ON (message_id, j.k) message_id, j.k, j.v
        FROM hit, jsonb_each(hit.payload) AS j(k, v)
        WHERE j.k IN ('pricing', 'conversation', 'biz_opaque_callback_data')
        ORDER BY message_id, j.k, at, rank, ord
    ) keyed GROUP BY message_id
),
agg AS (
    SELECT f.message_id, f.top_rank, f.queued_at, f.sent_at, f.failed_at, f.delivered_at, f.read_at, f.played_at,
        f.error_code, f.error_title, f.error_message, f.error_details,
        k.kept -> 'pricing' AS pricing, k.kept -> 'conversation' AS conversation,
        k.kept ->> 'biz_opaque_callback_data' AS callback
    FROM (
        SELECT message_id, max(rank) AS top_rank, min(at) FILTER (WHERE status = 'queued') AS queued_at,
min(at) FILTER (WHERE status = 'sent') AS sent_at,
min(at) FILTER (WHERE status = 'failed') AS failed_at,
min(at) FILTER (WHERE status = 'delivered') AS delivered_at,
min(at) FILTER (WHERE status = 'read') AS read_at,
min(at) FILTER (WHERE status = 'played') AS played_at, max(error_code) FILTER (WHERE status = 'failed') AS error_code,
max(error_title) FILTER (WHERE status = 'failed') AS error_title,
max(error_message) FILTER (WHERE status = 'failed') AS error_message,
max(error_details) FILTER (WHERE status = 'failed') AS error_details
        FROM firsts GROUP BY message_id
    ) f LEFT JOIN kept k USING (message_id)
    -- Fed to the UPDATE in id order, so concurrent batches normally lock rows in one order.
    ORDER BY f.message_id
),
upd AS (
    UPDATE message_tracking t SET
        status = CASE WHEN a.top_rank > (CASE t.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) THEN (CASE a.top_rank WHEN 0 THEN 'queued' WHEN 1 THEN 'sent' WHEN 2 THEN 'failed' WHEN 3 THEN 'delivered' WHEN 4 THEN 'read' WHEN 5 THEN 'played' END)
                      ELSE t.status END,
        queued_at = LEAST(t.queued_at, a.queued_at),
sent_at = LEAST(t.sent_at, a.sent_at),
failed_at = LEAST(t.failed_at, a.failed_at),
delivered_at = LEAST(t.delivered_at, a.delivered_at),
read_at = LEAST(t.read_at, a.read_at),
played_at = LEAST(t.played_at, a.played_at),
        error_code = CASE WHEN a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at) THEN a.error_code ELSE t.error_code END,
error_title = CASE WHEN a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at) THEN a.error_title ELSE t.error_title END,
error_message = CASE WHEN a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at) THEN a.error_message ELSE t.error_message END,
error_details = CASE WHEN a.failed_at IS NOT NULL AND (t.failed_at IS NULL OR a.failed_at < t.failed_at) THEN a.error_details ELSE t.error_details END,
        pricing = COALESCE(t.pricing, a.pricing),
        conversation_info = COALESCE(t.conversation_info, a.conversation),
        biz_opaque_callback_data = COALESCE(t.biz_opaque_callback_data, a.callback),
        updated_at = CASE WHEN a.top_rank > (CASE t.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) OR a.queued_at < COALESCE(t.queued_at, 'infinity') OR a.sent_at < COALESCE(t.sent_at, 'infinity') OR a.failed_at < COALESCE(t.failed_at, 'infinity') OR a.delivered_at < COALESCE(t.delivered_at, 'infinity') OR a.read_at < COALESCE(t.read_at, 'infinity') OR a.played_at < COALESCE(t.played_at, 'infinity') OR (t.pricing IS NULL AND a.pricing IS NOT NULL) OR (t.conversation_info IS NULL AND a.conversation IS NOT NULL) OR (t.biz_opaque_callback_data IS NULL AND a.callback IS NOT NULL) THEN %(now)s ELSE t.updated_at END
    FROM agg a
    -- By primary key only: `hit` found these ids within the tenant, and a tenant predicate here
    -- invites the planner to scan the tenant's rows instead.
    WHERE t.id = a.message_id
    RETURNING t.id
),
history AS (
    INSERT INTO message_status_events AS h
        (tenant_id, message_id, status, occurred_at, recorded_at, error_code, error_title, error_message, error_details, payload)
    SELECT %(tenant)s, f.message_id, f.status, f.at, %(now)s, error_code, error_title, error_message, error_details, m.payload
    FROM firsts f LEFT JOIN (
    SELECT message_id, status, jsonb_object_agg(k, v) AS payload FROM (
        SELECT DISTINCT ON (message_id, status, j.k) message_id, status, j.k, j.v
        FROM hit, jsonb_each(hit.payload) AS j(k, v)
        ORDER BY message_id, status, j.k, at, ord
    ) keyed GROUP BY message_id, status
    ) m
        USING (message_id, status)
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
SELECT array_agg(id) FROM upd
