DELETE FROM message_tracking WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.id IN (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.created_at < %(cutoff)s::TIMESTAMP WITH TIME ZONE ORDER BY message_tracking.created_at 
 LIMIT %(limit)s)
