SELECT message_status_events.id, message_status_events.tenant_id, message_status_events.message_id, message_status_events.status, message_status_events.occurred_at, message_status_events.recorded_at, message_status_events.error_code, message_status_events.error_title, message_status_events.error_message, message_status_events.error_details, message_status_events.payload, message_tracking.meta_message_id, message_tracking.genesys_message_id 
FROM message_status_events JOIN message_tracking ON message_tracking.id = message_status_events.message_id 
WHERE message_status_events.tenant_id = ? AND message_status_events.message_id = (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.meta_message_id = ? UNION ALL SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.genesys_message_id = ?
 LIMIT ? OFFSET ?) ORDER BY message_status_events.occurred_at, CASE message_status_events.status WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? WHEN ? THEN ? END
