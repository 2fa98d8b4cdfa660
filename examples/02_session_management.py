"""Session Management (seed 004): authenticate, check for QR, read the session, invalidate."""

from wastate.state_manager import StateManager

manager = StateManager()

# Update session after authentication
manager.update_session_status(
    authenticated=True,
    account_info={"number": "923332455342", "name": "Mahnoor", "platform": "iphone"},
)

# Check if QR scan is required
if manager.requires_qr_scan():
    print("Please scan QR code")
else:
    print("Using existing session")

# Get session info
session_info = manager.get_session_info()
print(f"Last authenticated: {session_info['last_authenticated']}")

# Mark session as invalid (forces re-authentication)
manager.mark_session_invalid(reason="Connection lost")

print(f"QR scan required after invalidation: {manager.requires_qr_scan()}")
print(f"Reason: {manager.get_session_info()['invalid_reason']}")
manager.close()
