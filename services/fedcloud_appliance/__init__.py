"""The umbrella command line ``fedcloud-appliance``: wires every service's jobs and tools."""
