"""MongoDB access: the connection (embedded or external) and one repository per collection."""
