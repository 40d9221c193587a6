"""The cluster description (configs/cluster.toml) and everything generated
from it: the Mosix node map, the LTSP 3 lts.conf, the dnsmasq DHCP+TFTP
configuration, the per-node TFTP tree and the node root overlay (the
ltsp_*_core package) with its rc script and the server-side snippets.

One module per concept:
    cluster   load and validate configs/cluster.toml
    maps      /etc/hpc.map or /etc/mosix.map
    ltsconf   /opt/ltsp/i386/etc/lts.conf
    dnsmasq   the server's DHCP + TFTP configuration
    tftp      the TFTP tree (through rootfs.pxetree.make_tftp_tree)
    rcscript  the node rc script, rendered from templates/mosix.sh.in
    server    the snippets the admin merges into the server's own files
    overlay   the node root overlay, all of the above in one tree

Every output is deterministic (sorted, no timestamps, no host names) and
written atomically, so packages made from it are reproducible."""
