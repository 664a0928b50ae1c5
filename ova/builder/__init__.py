"""Build, validate and boot-test the appliance VM image.

Data flow (one module per step)::

    settings -> rootfs (mmdebstrap + customize) -> images (preload into /var/lib/docker)
             -> disk (sfdisk + mkfs.ext4 -d + GRUB core image) -> package (qcow2, VMDK, OVF, .mf, .ova)
             -> validate (what importers check) -> boottest (QEMU TCG + NoCloud seed)

No loop devices, no mounts, no pre-existing VM. External tools run only through
:mod:`ova.builder.build_tools`, on the appliance's one adapter :mod:`fedcloud_core.external`
(argument lists, timeouts, checked exit codes, ToolError).
"""
