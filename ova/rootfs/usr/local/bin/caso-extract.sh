#!/bin/sh
# Compatibility name from the original appliance: accounting extract (cASO's job), one cycle.
exec "$(dirname "$0")/fedcloud-job" accounting "$@"
