SELECT message_tracking.created_at, message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.id = (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.meta_message_id = %(message_id)s::VARCHAR UNION ALL SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.genesys_message_id = %(message_id)s::VARCHAR 
 LIMIT %(param_1)s::INTEGER)
