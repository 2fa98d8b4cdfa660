"""Configuration (seed 004): read, set and update config values (any JSON)."""

from wastate.state_manager import StateManager

manager = StateManager()

# Get configuration
human_approval = manager.get_config("human_in_the_loop")
print(f"human_in_the_loop before: {human_approval}")

# Set configuration
manager.set_config("human_in_the_loop", True)
print(f"human_in_the_loop now: {manager.get_config('human_in_the_loop')}")

# Update multiple configs
manager.update_config(
    {
        "human_in_the_loop": False,
        "watcher_config": {"poll_interval_seconds": 10, "auto_reply_enabled": True},
    }
)
print(f"poll interval: {manager.get_config('watcher_config')['poll_interval_seconds']}")
print(f"human_in_the_loop after update: {manager.get_config('human_in_the_loop')}")
manager.close()
