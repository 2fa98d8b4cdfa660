WITH ev AS (
    SELECT x ->> 0 AS ext, x ->> 1 AS status, CAST(x ->> 2 AS timestamptz) AS at,
        CAST(x ->> 3 AS int) AS error_code, x ->> 4 AS error_title, x ->> 5 AS error_message,
        x ->> 6 AS error_details,
        CASE WHEN jsonb_typeof(x -> 7) = 'object' THEN x -> 7 END AS payload,
        ord
    FROM jsonb_array_elements(CAST(%(events)s AS jsonb)) WITH ORDINALITY AS e(x, ord)
),
probes_gone AS (
    DELETE FROM message_tracking
    WHERE tenant_id = %(tenant)s AND id = ANY(CAST(%(probe_ids)s AS bigint[]))
)
INSERT INTO pending_status_events AS p
    (tenant_id, external_id, status, occurred_at, recorded_at, error_code, error_title, error_message, error_details, payload)
SELECT %(tenant)s, ext, status, at, %(now)s, error_code, error_title, error_message, error_details, payload
FROM (
    SELECT f.*, m.payload FROM (
        SELECT DISTINCT ON (ext, status) ext, status, at, error_code, error_title, error_message, error_details
        FROM ev ORDER BY ext, status, at, ord
    ) f LEFT JOIN (
    SELECT ext, status, jsonb_object_agg(k, v) AS payload FROM (
        SELECT DISTINCT ON (ext, status, j.k) ext, status, j.k, j.v
        FROM ev, jsonb_each(ev.payload) AS j(k, v)
        ORDER BY ext, status, j.k, at, ord
    ) keyed GROUP BY ext, status
    ) m USING (ext, status)
    ) firsts
ON CONFLICT (tenant_id, external_id, status) DO UPDATE SET
        occurred_at = LEAST(p.occurred_at, excluded.occurred_at),
        error_code = CASE WHEN excluded.occurred_at < p.occurred_at THEN excluded.error_code ELSE p.error_code END,
error_title = CASE WHEN excluded.occurred_at < p.occurred_at THEN excluded.error_title ELSE p.error_title END,
error_message = CASE WHEN excluded.occurred_at < p.occurred_at THEN excluded.error_message ELSE p.error_message END,
error_details = CASE WHEN excluded.occurred_at < p.occurred_at THEN excluded.error_details ELSE p.error_details END,
        payload = NULLIF(CASE WHEN excluded.occurred_at < p.occurred_at THEN COALESCE(p.payload, '{}'::jsonb) || COALESCE(excluded.payload, '{}'::jsonb) ELSE COALESCE(excluded.payload, '{}'::jsonb) || COALESCE(p.payload, '{}'::jsonb) END,
                         '{}'::jsonb)
    WHERE excluded.occurred_at < p.occurred_at OR NOT (COALESCE(p.payload, '{}'::jsonb) @> COALESCE(excluded.payload, '{}'::jsonb))
