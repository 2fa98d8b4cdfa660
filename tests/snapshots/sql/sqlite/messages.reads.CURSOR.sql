SELECT message_tracking.created_at, message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.id = (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.meta_message_id = ? UNION ALL SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = ? AND message_tracking.genesys_message_id = ?
 LIMIT ? OFFSET ?)
