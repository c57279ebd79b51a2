"""The ``fleetd`` command line."""
