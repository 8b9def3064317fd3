"""The process: the command line, startup and shutdown, the two applications, logging and the demo server."""
