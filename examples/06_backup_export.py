"""Backup & Export (seed 004): write the seed-format state file, atomically."""

import json

from wastate.state_manager import MessageStatus, StateManager

manager = StateManager()
manager.add_message({"id": "msg1", "body": "keep me"}, MessageStatus.INCOMING)

# Create backup
backup_file = manager.backup_state()
print(f"Backup created: {backup_file}")

# Export to custom location
manager.export_state("backup/state_2024_02_16.json")
with open("backup/state_2024_02_16.json", encoding="utf-8") as exported:
    print(f"Exported incoming: {[m['id'] for m in json.load(exported)['messages']['incoming']]}")

# Get full state
full_state = manager.get_full_state()
print(f"State sections: {', '.join(full_state)}")
manager.close()
