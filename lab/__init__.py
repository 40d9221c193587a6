"""The lab: the kernels booted and proven.  boot/ the boot test (QEMU
machines, the console watcher, each variant's boot matrix, reports);
site/ a virtual LTSP site network (namespace, NFS, dnsmasq); nodes.py
what an NFS-root node reports; nfsboot.py one such node alone;
cluster.py the cluster run; migrate.py CRIU migration between
nodes; lava/ jobs for a LAVA lab (jobs, run, results);
spawn.py the child processes (QEMU, daemons) every room starts.  May
import common, kernels, initrd and rootfs; never release."""
