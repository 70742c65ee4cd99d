"""``pymesos-modules bench``: allocators timed side by side on the same clusters."""
