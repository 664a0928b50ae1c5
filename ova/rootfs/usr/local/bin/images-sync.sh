#!/bin/sh
# Compatibility name (cloudkeeper/atrope's role): replicate the subscribed image lists, one cycle.
exec "$(dirname "$0")/fedcloud-job" images "$@"
