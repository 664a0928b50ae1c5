#!/bin/sh
# Compatibility name from the original appliance: collect the site's GLUE2 snapshot, one cycle
# (the resource BDII container publishes it).
exec "$(dirname "$0")/fedcloud-job" cloud-info "$@"
