"""The `srnet` command line and Python client (the service's front doors)."""
