"""The registered scorers, one module per family or idea; the registry imports every module here."""
