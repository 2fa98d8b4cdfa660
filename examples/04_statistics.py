"""Statistics (seed 004): counters of the lifecycle, and resetting them."""

from wastate.state_manager import MessageStatus, StateManager

manager = StateManager()

# Some traffic first, so there is something to count (the seed assumes a running system).
for number in range(4):
    manager.add_message({"id": f"in{number}", "body": "hi"}, MessageStatus.INCOMING)
    manager.move_message(f"in{number}", MessageStatus.INCOMING, MessageStatus.PENDING_APPROVAL)
    manager.move_message(f"in{number}", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED)
    outcome = MessageStatus.SENT if number < 3 else MessageStatus.FAILED
    manager.move_message(f"in{number}", MessageStatus.APPROVED, outcome)

# Get statistics
stats = manager.get_statistics()
print(f"Total incoming: {stats['total_incoming']}")
print(f"Total sent: {stats['total_sent']}")
print(f"Success rate: {stats['total_sent'] / stats['total_incoming'] * 100}%")

# Reset statistics
manager.reset_statistics()
print(f"Total incoming after reset: {manager.get_statistics()['total_incoming']}")
manager.close()
