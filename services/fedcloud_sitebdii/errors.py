"""Errors of the site BDII: it has no error class of its own.

What its code raises and catches all comes from the core (:mod:`fedcloud_core.errors`)::

    ConfigError                    site.cfg / --ldap-url / the config is wrong      exit 2
    PermanentError
    +-- BdiiError                  fedcloud_core.bdii.errors
    |   +-- LdapUnavailable        a resource BDII or the site's slapd did not
    |   |                          answer (also a TransientError): that resource's
    |   |                          cached answer is used while young enough      exit 75
    |   +-- SlapdError             slapd could not be configured, started or stopped
    +-- LdifError                  fedcloud_core.ldif: a cached answer is not LDIF
    +-- DnError                    fedcloud_core.bdii.dn: an entry's DN is malformed

One resource BDII that fails never stops the others: its problem goes into the report.
"""
