UPDATE message_tracking AS t SET
        status = CASE WHEN (CASE e.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) > (CASE t.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) THEN e.status ELSE t.status END,
        queued_at = CASE WHEN (e.status = 'queued' AND (t.queued_at IS NULL OR e.at < t.queued_at)) THEN e.at ELSE t.queued_at END,
        sent_at = CASE WHEN (e.status = 'sent' AND (t.sent_at IS NULL OR e.at < t.sent_at)) THEN e.at ELSE t.sent_at END,
        failed_at = CASE WHEN (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) THEN e.at ELSE t.failed_at END,
        delivered_at = CASE WHEN (e.status = 'delivered' AND (t.delivered_at IS NULL OR e.at < t.delivered_at)) THEN e.at ELSE t.delivered_at END,
        read_at = CASE WHEN (e.status = 'read' AND (t.read_at IS NULL OR e.at < t.read_at)) THEN e.at ELSE t.read_at END,
        played_at = CASE WHEN (e.status = 'played' AND (t.played_at IS NULL OR e.at < t.played_at)) THEN e.at ELSE t.played_at END,
        error_code = CASE WHEN (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) THEN e.error_code ELSE t.error_code END,
        error_title = CASE WHEN (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) THEN e.error_title ELSE t.error_title END,
        error_message = CASE WHEN (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) THEN e.error_message ELSE t.error_message END,
        error_details = CASE WHEN (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) THEN e.error_details ELSE t.error_details END,
        pricing = COALESCE(t.pricing, e.pricing),
        conversation_info = COALESCE(t.conversation_info, e.conversation),
        biz_opaque_callback_data = COALESCE(t.biz_opaque_callback_data, e.callback),
        updated_at = CASE WHEN (CASE e.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) > (CASE t.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 WHEN 'played' THEN 5 END) OR (e.status = 'queued' AND (t.queued_at IS NULL OR e.at < t.queued_at)) OR (e.status = 'sent' AND (t.sent_at IS NULL OR e.at < t.sent_at)) OR (e.status = 'failed' AND (t.failed_at IS NULL OR e.at < t.failed_at)) OR (e.status = 'delivered' AND (t.delivered_at IS NULL OR e.at < t.delivered_at)) OR (e.status = 'read' AND (t.read_at IS NULL OR e.at < t.read_at)) OR (e.status = 'played' AND (t.played_at IS NULL OR e.at < t.played_at)) OR (t.pricing IS NULL AND e.pricing IS NOT NULL) OR (t.conversation_info IS NULL AND e.conversation IS NOT NULL) OR (t.biz_opaque_callback_data IS NULL AND e.callback IS NOT NULL) THEN e.now ELSE t.updated_at END
FROM (
    SELECT ? AS status, ? AS at, ? AS now, ? AS error_code,
        ? AS error_title, ? AS error_message,
        ? AS error_details, ? AS pricing,
        ? AS conversation, ? AS callback
) AS e
WHERE t.id = ?
