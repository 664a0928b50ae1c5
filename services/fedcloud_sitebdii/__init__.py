"""site-bdii: resource BDIIs + static site info -> GLUE2DomainID=<site>,o=glue."""
