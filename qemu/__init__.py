"""Boot testing under QEMU: the LTSP-style PXE tree, QEMU command lines,
the console watcher and its verdicts, and the reports of a boot matrix."""
