"""``pymesos-modules simulate``: a cluster on a virtual clock through the real master."""
