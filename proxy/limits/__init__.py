"""Token-bucket rate limits: specs, keys and stores (in memory, or in Redis shared by replicas). No HTTP here."""
