"""The release: gates, the LTSP 3 tarballs, the Debian packages and their
signed apt repository, publishing by an atomic link swap, verification,
KCIDB results.  The top layer: may import every other, none imports it."""
