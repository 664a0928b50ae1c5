#!/bin/sh
# Compatibility name from the original appliance: send the outgoing APEL messages, one cycle.
exec "$(dirname "$0")/fedcloud-job" ssm "$@"
