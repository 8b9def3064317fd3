"""Human approval of calls: the book of pending calls (in memory or in Redis) and their outcomes. No HTTP here."""
