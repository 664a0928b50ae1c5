"""Shared by the resource BDII (bdii-update) and the site BDII: slapd management and the LDAP updater.

slapd.py    render slapd.conf from templates/slapd/slapd.conf.j2, run slapd as a supervised child
dn.py       DN splitting, normalisation and re-homing
sync.py     the updater: read the tree, diff per DN and attribute, apply the minimal operations
ldap.py     the ldap3 adapter (connections with timeouts, paged reads, counted writes)
snapshot_reader.py  reading a snapshot LDIF with its health (missing, empty, stale, invalid)
infosys.py  the o=infosys statistics entries
"""
