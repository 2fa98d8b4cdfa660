SELECT message_tracking.id, message_tracking.tenant_id, message_tracking.meta_message_id, message_tracking.genesys_message_id, message_tracking.conversation_id, message_tracking.wa_id, message_tracking.direction, message_tracking.status, message_tracking.message_type, message_tracking.media_type, message_tracking.media_url, message_tracking.media_id, message_tracking.media_mime_type, message_tracking.media_sha256, message_tracking.media_filename, message_tracking.media_caption, message_tracking.queued_at, message_tracking.sent_at, message_tracking.failed_at, message_tracking.delivered_at, message_tracking.read_at, message_tracking.played_at, message_tracking.error_code, message_tracking.error_title, message_tracking.error_message, message_tracking.error_details, message_tracking.pricing, message_tracking.conversation_info, message_tracking.biz_opaque_callback_data, message_tracking.created_at, message_tracking.updated_at 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.id = (SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.meta_message_id = %(message_id)s::VARCHAR UNION ALL SELECT message_tracking.id 
FROM message_tracking 
WHERE message_tracking.tenant_id = %(tenant)s::VARCHAR AND message_tracking.genesys_message_id = %(message_id)s::VARCHAR 
 LIMIT %(param_1)s::INTEGER)
