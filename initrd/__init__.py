"""Node initrd images: a tiny static init of our own (init.c), packed as an
uncompressed newc cpio for Linux 6.1 and as an ext2 image for Linux 2.4."""
