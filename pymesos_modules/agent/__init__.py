"""The agent runtime: registers with a master, runs command tasks, calls the agent-side modules.

See docs/agent.md for flags, the sandbox layout and the task environment, and
docs/agent-protocol.md for how the agent talks to the master.
"""
