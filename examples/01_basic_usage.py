"""Basic Usage (seed 004): open the state manager and check the session.

Run it anywhere: with no settings it keeps its state in ./wastate.db (SQLite, migrated on first
use). The seed's `from state_manager import …` becomes `from wastate.state_manager import …`.
"""

from wastate.state_manager import MessageStatus, StateManager  # noqa: F401 (the seed's import)

# Initialize
manager = StateManager()

# Check session status
if manager.is_session_valid():
    print("Session is valid, no QR scan needed")
else:
    print("Session invalid, QR scan required")

manager.close()
