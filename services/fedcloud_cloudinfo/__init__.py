"""cloud-info and bdii-update: OpenStack -> typed GLUE2 site model -> LDIF/JSON -> resource BDII."""
