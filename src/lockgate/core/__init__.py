"""The kernel: orchestration only. It loads configuration and plugins, resolves roles,
runs operations and returns result objects; every behaviour comes from a plugin."""
