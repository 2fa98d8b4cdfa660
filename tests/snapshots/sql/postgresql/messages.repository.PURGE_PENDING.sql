DELETE FROM pending_status_events WHERE pending_status_events.tenant_id = %(tenant)s::VARCHAR AND pending_status_events.id IN (SELECT pending_status_events.id 
FROM pending_status_events 
WHERE pending_status_events.tenant_id = %(tenant)s::VARCHAR AND pending_status_events.recorded_at < %(cutoff)s::TIMESTAMP WITH TIME ZONE ORDER BY pending_status_events.recorded_at 
 LIMIT %(limit)s)
