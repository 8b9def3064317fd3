"""Tool safety: pinned definitions (`tools lock`, `tools diff`, drift while serving) and the report (`scan`)."""
