"""The master runtime: frameworks, agents, offers and tasks around an allocator."""
