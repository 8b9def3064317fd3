"""Response caching: the rules (what, under which key, for whom, how long) and the stores. No HTTP here."""
