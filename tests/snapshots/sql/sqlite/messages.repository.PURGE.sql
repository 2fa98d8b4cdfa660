DELETE FROM message_tracking WHERE message_tracking.tenant_id = ? AND message_tracking.id IN (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.created_at < ? ORDER BY message_tracking.created_at
 LIMIT ? OFFSET ?)
