"""Extract: read usage facts from OpenStack (the only package that talks to the cloud)."""
