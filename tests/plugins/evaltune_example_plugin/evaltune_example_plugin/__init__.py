"""An example evaltune plugin: a scorer with a parameter, a suite format and a backend, found by entry points."""
