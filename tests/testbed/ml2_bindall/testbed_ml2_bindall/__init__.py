"""An ML2 mechanism driver for the testbed that binds every port it is offered.

Neutron runs API-only (no L2 agent), so without this nova's fake hypervisor
could not boot a server with a NIC: the port would stay unbound. This driver
takes the first segment of each port and declares it bound and ACTIVE with a
generic VIF type. It never touches a dataplane. Test use only.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindEverything(api.MechanismDriver):
    """Bind any port on any host to its first candidate segment."""

    def initialize(self):
        """Nothing to set up: no agents, no backend."""

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        segments = list(context.segments_to_bind)
        if not segments:
            return
        context.set_binding(
            segments[0][api.ID],
            portbindings.VIF_TYPE_OTHER,
            {portbindings.CAP_PORT_FILTER: False},
            status=constants.PORT_STATUS_ACTIVE,
        )
