"""Lifecycle Example (seed 004): every path of the approval lifecycle.

The seed shows the alternatives (3a/3b, 4/4b) on one message; here each path gets its own
message, because a message is in exactly one status and `move_message` only moves it from the
status it is in (it returns False otherwise).
"""

from wastate.errors import InvalidTransition
from wastate.state_manager import MessageStatus, StateManager

manager = StateManager()


def arrive(msg_id: str) -> None:
    # 1. Message arrives
    manager.add_message({"id": msg_id, "body": f"message {msg_id}"}, MessageStatus.INCOMING)
    # 2. Needs approval
    manager.move_message(msg_id, MessageStatus.INCOMING, MessageStatus.PENDING_APPROVAL)


arrive("a")
# 3a. Approved
print(
    "3a approved:",
    manager.move_message("a", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED),
)
# 4. Send (if approved)
print("4 sent:", manager.move_message("a", MessageStatus.APPROVED, MessageStatus.SENT))

arrive("b")
# 3b. Or rejected
print(
    "3b rejected:",
    manager.move_message("b", MessageStatus.PENDING_APPROVAL, MessageStatus.REJECTED),
)

arrive("c")
manager.move_message("c", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED)
# 4b. Or failed
print("4b failed:", manager.move_message("c", MessageStatus.APPROVED, MessageStatus.FAILED))

# A message is moved only from where it is: "a" is no longer pending.
print("again:", manager.move_message("a", MessageStatus.PENDING_APPROVAL, MessageStatus.APPROVED))

# A rejected message cannot be sent: the lifecycle refuses it.
try:
    manager.move_message("b", MessageStatus.REJECTED, MessageStatus.SENT)
except InvalidTransition as error:
    print(f"refused: {error}")

print("history of a:", " -> ".join(step["to"] for step in manager.get_message_history("a")))
manager.close()
