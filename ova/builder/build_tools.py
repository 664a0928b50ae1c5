"""The external tools of the OVA build, each with its default timeout (seconds).

They run through the appliance's one adapter for external tools,
:class:`fedcloud_core.external.Tool`: argument lists (no shell), timeouts, checked exit
codes and :class:`~fedcloud_core.errors.ToolError`; long-running steps write their output
to a log file under the work directory.
"""

from __future__ import annotations

from fedcloud_core.external import Tool


def _tool(name: str, timeout: float) -> Tool:
    return Tool(name, timeout=timeout, missing="not installed (run scripts/dev/ova deps)")


MMDEBSTRAP = _tool("mmdebstrap", 1200)
SFDISK = _tool("sfdisk", 30)
MKFS_EXT4 = _tool("mkfs.ext4", 600)
E2FSCK = _tool("e2fsck", 300)
GRUB_MKIMAGE = _tool("grub-mkimage", 60)
QEMU_IMG = _tool("qemu-img", 900)
DOCKER = _tool("docker", 600)
IP = _tool("ip", 30)
CHROOT = _tool("chroot", 120)
DPKG_QUERY = _tool("dpkg-query", 30)
XMLLINT = _tool("xmllint", 60)
SHA256SUM = _tool("sha256sum", 300)
VIRT_V2V = _tool("virt-v2v", 300)
CLOUD_LOCALDS = _tool("cloud-localds", 60)
SSH_KEYGEN = _tool("ssh-keygen", 30)
SSH = _tool("ssh", 120)
LDAPSEARCH = _tool("ldapsearch", 30)
