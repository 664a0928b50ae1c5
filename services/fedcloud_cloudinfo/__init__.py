"""cloud-info and bdii-update: OpenStack -> typed GLUE2 site model -> LDIF/JSON -> resource BDII."""

from pathlib import Path

#: the project's LDAP schema of the GLUE 2.1 cloud classes (load after Debian's GLUE20.schema)
GLUE21_SCHEMA = Path(__file__).with_name("GLUE21-cloud.schema")
