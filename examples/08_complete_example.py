"""Complete Example (seed 004), with tiny stand-ins for the seed's WhatsAppSender and
WhatsAppAssistant (which live in the seed's own project, not here)."""

import sys

from wastate.state_manager import MessageStatus, StateManager


class WhatsAppSender:
    """Stand-in: pretends every message is delivered."""

    def send_message(self, recipient: str, body: str) -> bool:
        print(f"(sending to {recipient}: {body})")
        return True


class WhatsAppAssistant:
    """Stand-in: answers every message with a greeting."""

    def process_message(self, message: dict) -> dict | None:
        return {"recipient": message["from"].split("@")[0], "message": "Hi! How can I help?"}


# Initialize
manager = StateManager()
sender = WhatsAppSender()
assistant = WhatsAppAssistant()

# A fresh database has never seen a QR scan: record the one the seed's user already did.
if manager.requires_qr_scan():
    manager.update_session_status(
        authenticated=True, account_info={"number": "923332455342", "name": "User"}
    )

# Validate session
if not manager.is_session_valid():
    print("Session invalid. Please authenticate.")
    sys.exit(1)

# Process incoming message
incoming = {"id": "msg001", "from": "923332455342@c.us", "fromName": "User", "body": "Hello!"}

# Track incoming
manager.add_message(incoming, MessageStatus.INCOMING)

# Generate response
response = assistant.process_message(incoming)

if response:
    reply = {"id": "reply_001", "recipient": response["recipient"], "body": response["message"]}

    # Add to pending
    manager.add_message(reply, MessageStatus.PENDING_APPROVAL)

    # Approve (or wait for human approval)
    manager.move_message("reply_001", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED)

    # Send
    success = sender.send_message(reply["recipient"], reply["body"])

    # Update status
    if success:
        manager.move_message("reply_001", MessageStatus.APPROVED, MessageStatus.SENT)
    else:
        manager.move_message("reply_001", MessageStatus.APPROVED, MessageStatus.FAILED)

# Check statistics
stats = manager.get_statistics()
print(f"Messages processed: {stats['total_incoming']}")
print(f"Messages sent: {stats['total_sent']}")
manager.close()
