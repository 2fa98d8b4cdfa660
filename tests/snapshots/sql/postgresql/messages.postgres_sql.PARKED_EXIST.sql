SELECT EXISTS (SELECT FROM pending_status_events WHERE tenant_id = %(tenant)s AND external_id = ANY(string_to_array(%(ids)s, ' ')))
