"""The boot test: QEMU machines from configs/ (machine.py), one boot and a
matrix of them (qemu.py), the console watcher and its patterns, what a
console says (facts.py), the high-initrd kernel copy (hostile.py), a
variant's boot matrix run and stored (variant.py), its reports.  Imports
common, kernels, initrd, rootfs and lab.spawn."""
