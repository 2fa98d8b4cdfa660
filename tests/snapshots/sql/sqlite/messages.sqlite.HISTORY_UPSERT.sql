INSERT INTO message_status_events (tenant_id, message_id, status, occurred_at, recorded_at, error_code, error_title, error_message, error_details, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, message_id, status) DO UPDATE SET
    occurred_at = CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN excluded.occurred_at ELSE message_status_events.occurred_at END,
    error_code = CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN excluded.error_code ELSE message_status_events.error_code END,
    error_title = CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN excluded.error_title ELSE message_status_events.error_title END,
    error_message = CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN excluded.error_message ELSE message_status_events.error_message END,
    error_details = CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN excluded.error_details ELSE message_status_events.error_details END,
    payload = NULLIF(CASE WHEN excluded.occurred_at < message_status_events.occurred_at THEN json_patch(COALESCE(message_status_events.payload, '{}'), COALESCE(excluded.payload, '{}'))
                          ELSE json_patch(COALESCE(excluded.payload, '{}'), COALESCE(message_status_events.payload, '{}')) END, '{}')
WHERE excluded.occurred_at < message_status_events.occurred_at OR excluded.payload IS NOT NULL
