"""bot-gateway: the process, its configuration and the flows between channels and agents."""
