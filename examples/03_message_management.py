"""Message Management (seed 004): add a message, move it through the lifecycle, list, clear."""

from wastate.state_manager import MessageStatus, StateManager

manager = StateManager()

# Add incoming message
manager.add_message(
    {"id": "msg123", "from": "1234567890@c.us", "fromName": "John Doe", "body": "Hello!"},
    MessageStatus.INCOMING,
)

# Move message through lifecycle
manager.move_message("msg123", MessageStatus.INCOMING, MessageStatus.PENDING_APPROVAL)
manager.move_message("msg123", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED)
manager.move_message("msg123", MessageStatus.APPROVED, MessageStatus.SENT)

# Get messages by status
pending = manager.get_messages(MessageStatus.PENDING_APPROVAL)
sent = manager.get_messages(MessageStatus.SENT, limit=10)
print(f"Pending: {len(pending)}")
print(f"Sent: {[message['id'] for message in sent]} body={sent[0]['body']!r}")

# Clear messages
manager.clear_messages(MessageStatus.SENT)
print(f"Sent after clearing: {len(manager.get_messages(MessageStatus.SENT))}")
manager.close()
